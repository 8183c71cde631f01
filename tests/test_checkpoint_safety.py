"""A checkpoint folder is data, not code: resuming a crafted `meta_NNNNNN.json` never unpickles
anything (issue: checkpoint code execution), and the RNG state round-trips exactly as JSON."""

import base64
import json
import os
import pickle
import random

import numpy as np
import pytest
import torch

from qwenvl_data.errors import UsageError
from qwenvl_data.model import checkpoint


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):  # what an attacker puts in a pickle: a call run at load time
        return (open, (self.path, "w"))


def test_rng_state_is_json_and_round_trips():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = checkpoint.rng_state()
    text = json.dumps(state)  # plain JSON, nothing else
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    checkpoint.set_rng_state(json.loads(text))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "pickle",  # the old format: a base64 pickle string
        {"python": [3, [1, 2], None]},  # wrong shapes
        {"python": "x", "numpy": 1, "torch": "%%"},
        [1, 2, 3],
    ],
)
def test_crafted_rng_state_never_runs_code(tmp_path, bad):
    marker = tmp_path / "pwned"
    if bad == "pickle":
        bad = base64.b64encode(pickle.dumps({"python": _Payload(str(marker))})).decode()
    with pytest.raises(UsageError, match="invalid 'rng' state"):
        checkpoint.set_rng_state(bad)
    assert not marker.exists()


def test_resume_of_crafted_checkpoint_folder_is_refused(tmp_path, capsys):
    """The whole CLI path: qwenvl-train --resume on a folder whose meta holds a pickle payload."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from qwenvl_data.model.fixtures import SAMPLE_TEXT, train_tokenizer, write_stage_shards
    from qwenvl_data.model.train import main as train_main

    train_tokenizer(SAMPLE_TEXT * 5, tmp_path / "tok", 300)
    write_stage_shards(tmp_path / "data", 1, 4, shards=1)
    cfg_args = [
        "--stage",
        "1",
        "--data",
        str(tmp_path / "data"),
        "--tokenizer",
        str(tmp_path / "tok"),
        "--config",
        "tiny",
        "--batch-size",
        "2",
        "--workers",
        "0",
    ]
    out = tmp_path / "ckpt"
    assert train_main(cfg_args + ["--out", str(out), "--steps", "1", "--save-every", "1"]) == 0
    meta_path = sorted(out.glob("meta_*.json"))[-1]
    meta = json.loads(meta_path.read_text())
    marker = tmp_path / "pwned"
    meta["rng"] = [base64.b64encode(pickle.dumps(_Payload(str(marker)))).decode()]
    meta_path.write_text(json.dumps(meta))
    rc = train_main(cfg_args + ["--out", str(out), "--steps", "2", "--resume"])
    assert rc != 0
    assert not marker.exists()
    err = capsys.readouterr().err
    assert "invalid 'rng' state" in err and "Traceback" not in err
