# Data: fetch (CIFAR) or read (ImageFolder) the dataset once, prepare it into the canonical
# form every later stage reads.
import os

from curvmia.cifar import CIFAR, expected_md5, raw_archive_path
from curvmia.imagefolder import check_imagefolder_layout

DATASET = config["data"]["dataset"]
# The official archive at <root>/raw/, another one (data.md5: a mirror's or a local file)
# at <root>/raw/<md5>/, with its own prepared-data directory (prepared_dir_name).
ARCHIVE = raw_archive_path(config["data"]) if DATASET in CIFAR else None
ARCHIVE_MD5 = expected_md5(DATASET, config["data"]["md5"]) if DATASET in CIFAR else ""

# An ImageFolder dataset that is not prepared yet must have its layout before any job runs.
if DATASET == "imagefolder" and not os.path.exists(f"{DATA}/manifest.json"):
    if not config["data"]["path"]:
        _config_error("data.path: dataset imagefolder needs the directory of the images")
    try:
        check_imagefolder_layout(config["data"]["path"])
    except ValueError as e:
        _config_error(str(e))


if ARCHIVE:

    # Login nodes reach the internet, compute nodes often do not: always run locally.
    rule download_data:
        output:
            ARCHIVE,
        params:
            dataset=DATASET,
            mirror=config["data"]["mirror"] or "",
            archive=config["data"]["archive"] or "",
            md5=ARCHIVE_MD5,
        localrule: True
        retries: 2
        threads: job_threads("light")
        resources:
            **job_resources("light"),
        conda:
            "../envs/curvmia.yaml"
        container: IMAGES["cpu"]
        log:
            f"{ARCHIVE}.download.log",
        shell:
            "python $CURVMIA_SCRIPTS/download_data.py --dataset {params.dataset:q}"
            " --mirror={params.mirror:q} --archive={params.archive:q} --md5={params.md5:q}"
            " --out {output:q} > {log:q} 2>&1"


checkpoint prepare_data:
    input:
        archive=[ARCHIVE] if ARCHIVE else [],
    output:
        images=f"{DATA}/train_images.npy",
        labels=f"{DATA}/train_labels.npy",
        test_images=f"{DATA}/test_images.npy",
        test_labels=f"{DATA}/test_labels.npy",
        manifest=f"{DATA}/manifest.json",
    params:
        dataset=DATASET,
        md5=ARCHIVE_MD5,
        test_size=config["data"]["test_size"],
        split_seed=config["data"]["split_seed"],
        path=config["data"]["path"] or "",
        image_size=config["data"]["image_size"],
        resize=config["data"]["resize"],
        stats=config["data"]["stats"],
    threads: job_threads("prepare")
    resources:
        **job_resources("prepare"),
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{DATA}/prepare.log",
    benchmark:
        f"{DATA}/prepare.benchmark.tsv"
    shell:
        "python $CURVMIA_SCRIPTS/prepare_data.py --dataset {params.dataset:q}"
        " --manifest {output.manifest:q} --archive={input.archive:q} --md5={params.md5:q}"
        " --path={params.path:q}"
        " --test-size {params.test_size:q} --split-seed {params.split_seed:q}"
        " --image-size {params.image_size:q} --resize {params.resize:q} --stats {params.stats:q}"
        " --workers {threads} > {log:q} 2>&1"
