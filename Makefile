# Two commands for users (see README): `make run` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.curvmia-installed
EXPERIMENT ?= digits
# Rules call `python`: make it the virtual environment's.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run report test lint clean lock archive mutate tf-env lock-tf docs conda-envs

setup: $(STAMP)

$(STAMP): envs/requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r envs/requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The TensorFlow environment of the Feldman & Zhang checkpoint conversion (rules/convert.smk;
# docs/audit-your-model.md): its own virtual environment, from its own hash lock. The
# converter test (tests/test_convert_fz.py) builds it through this target when it is missing.
TF_VENV ?= .venv-tf
TF_STAMP := $(TF_VENV)/.tf-installed
tf-env: $(TF_STAMP)

$(TF_STAMP): envs/tf.lock
	test -x $(TF_VENV)/bin/python || $(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TF_VENV)/bin/python -m pip install --quiet --require-hashes -r envs/tf.lock
	touch $(TF_STAMP)

# The default workflow end to end, then its Snakemake HTML report.
run: setup
	$(BIN)/snakemake --profile profiles/local
	$(BIN)/snakemake --profile profiles/local --report results/$(EXPERIMENT)/report.html
	@echo "Results: results/$(EXPERIMENT)/ (metrics.md, metrics.csv, roc.png, report.html)"

DEV_STAMP := $(VENV)/.curvmia-dev-installed
$(DEV_STAMP): envs/requirements-dev.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -r envs/requirements-dev.txt
	touch $(DEV_STAMP)

# The suite, the fixed sample of mutants of the core modules included (tests/test_mutation.py).
# TEST_WORKERS pytest-xdist processes, each taking whole test files (docs/testing.md);
# TEST_WORKERS=0 runs it in this one process. Three on two cores: the worker of the SLURM
# rehearsal mostly waits on the scheduler.
TEST_WORKERS ?= 3
test: setup $(DEV_STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Mutation testing of the core modules (docs/testing.md): every mutant, or PER_MODULE of
# each module's seeded sample (after the first START); MODULE=metrics for one module.
mutate: setup $(DEV_STAMP)
	$(BIN)/python tests/_mutation.py run $(if $(MODULE),--module $(MODULE)) \
		$(if $(PER_MODULE),--per-module $(PER_MODULE)) $(if $(START),--start $(START))

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint
	PYTHONPATH=. $(BIN)/python scripts/conda_env.py --check

# Regenerate the hash-locked requirement files from envs/requirements*.txt (needs PyPI),
# then the conda environment files generated from them.
LOCK = $(abspath $(BIN))/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links
lock: setup
	$(BIN)/python -m pip install --quiet -r envs/requirements-dev.txt
	cd envs && $(LOCK) --allow-unsafe -o requirements.lock requirements.txt
	cd envs && $(LOCK) --allow-unsafe -o gpu.lock requirements-gpu.txt
	cd envs && $(LOCK) --allow-unsafe -o tf.lock requirements-tf.txt
	PYTHONPATH=. $(BIN)/python scripts/conda_env.py

# Only the TensorFlow conversion environment's lock (and its conda environment file).
lock-tf: setup
	$(BIN)/python -m pip install --quiet -r envs/requirements-dev.txt
	cd envs && $(LOCK) --allow-unsafe -o tf.lock requirements-tf.txt
	PYTHONPATH=. $(BIN)/python scripts/conda_env.py

# The conda environment files of `--sdm conda` (envs/curvmia.yaml, envs/tf.yaml) from the
# locks, without locking again (tests/test_conda_env.py fails when they are stale).
conda-envs: setup
	PYTHONPATH=. $(BIN)/python scripts/conda_env.py

# Archive the finished default run: workflow, locks, config, provenance (images referenced).
archive: setup
	$(BIN)/python scripts/archive.py --out results/$(EXPERIMENT)-archive.tar.gz

clean:
	rm -rf results data .snakemake mutants

# docs/configuration.md from config/schema.yaml (tests/test_docs.py fails when it is stale);
# the table of what each job requests in docs/cluster.md from the shipped configs' plans
# (tests/test_cluster_resources.py fails when it is stale); the table of where each module
# stands under mutation testing in docs/testing.md from tests/mutation_records.json
# (tests/test_mutation.py fails when it is stale).
docs: setup
	PYTHONPATH=. $(BIN)/python scripts/schema_doc.py
	PYTHONPATH=. $(BIN)/python scripts/cluster_requests.py
	$(BIN)/python tests/_mutation.py table
