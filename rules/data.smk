# Data: prepare the dataset once into the canonical form every later stage reads.


rule prepare_data:
    output:
        images=f"{DATA}/train_images.npy",
        labels=f"{DATA}/train_labels.npy",
        test_images=f"{DATA}/test_images.npy",
        test_labels=f"{DATA}/test_labels.npy",
        manifest=f"{DATA}/manifest.json",
    params:
        dataset=config["data"]["dataset"],
        test_size=config["data"]["test_size"],
        split_seed=config["data"]["split_seed"],
    conda:
        "../envs/curvmia.yaml"
    container: IMAGES["cpu"]
    log:
        f"{DATA}/prepare.log",
    shell:
        "python $CURVMIA_SCRIPTS/prepare_data.py --dataset {params.dataset}"
        " --manifest {output.manifest}"
        " --test-size {params.test_size} --split-seed {params.split_seed} > {log} 2>&1"
