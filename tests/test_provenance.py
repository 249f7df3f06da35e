"""curvmia.provenance: the record every run writes to results/<experiment>/provenance.json."""

import hashlib
import json
import subprocess

import torch

from curvmia.provenance import collect, git_commit


def test_git_commit_of_the_checkout_and_of_an_unpacked_archive(repo_root, tmp_path):
    head = subprocess.run(
        ["git", "-C", str(repo_root), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert git_commit(repo_root).removesuffix("-dirty") == head
    (tmp_path / "workflow").mkdir()
    assert git_commit(tmp_path / "workflow") == "unknown"
    (tmp_path / "ARCHIVE.json").write_text(json.dumps({"git_commit": "abc123"}))
    assert git_commit(tmp_path / "workflow") == "abc123 (archive)"


def test_collect_records_config_images_numerics_and_models(tmp_path):
    config = {"experiment": "t", "train": {"epochs": 3}, "containers": {"cpu": "c.sif"}}
    ckpts = []
    for row, device in ((3, "cpu"), (1, "cuda:0")):
        path = tmp_path / f"model_{row}.pt"
        torch.save({"state_dict": {}, "row": row, "device": device, "torch": "2.x"}, path)
        ckpts.append(path)
    rec = collect(config, commit="deadbeef", images=config["containers"], checkpoints=ckpts)
    blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    assert rec["config_hash"] == hashlib.sha256(blob).hexdigest()[:16]
    assert rec["git_commit"] == "deadbeef" and rec["container_images"] == {"cpu": "c.sif"}
    assert rec["packages"]["torch"] == torch.__version__.split("+")[0]
    t = rec["torch"]
    assert t["cuda_matmul_allow_tf32"] == torch.backends.cuda.matmul.allow_tf32
    assert t["float32_matmul_precision"] == torch.get_float32_matmul_precision()
    assert t["num_threads"] == torch.get_num_threads()
    assert [(m["row"], m["device"]) for m in rec["models"]] == [(1, "cuda:0"), (3, "cpu")]
    json.dumps(rec)  # serialisable as written
