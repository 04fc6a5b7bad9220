"""A run with a validation split trains on the other rows only, logs val_acc each epoch, and
with test_every_epoch false reads the test set after its last epoch alone."""

import torch

from bpfree.data import load_dataset
from bpfree.data.split import stratified_split
from bpfree.training import TrainConfig, train
from bpfree.training import trainer as trainer_module


def config(data_dir, tmp_path, **changes):
    values = dict(
        rule="bp", dataset="mnist", hidden=[8], epochs=3, batch_size=8, diagnostics=False,
        decay_epochs=[2], data_dir=str(data_dir), out=str(tmp_path / "run"), val_fraction=0.25,
    )  # fmt: skip
    return TrainConfig(**{**values, **changes})


def test_the_batches_hold_only_training_rows(data_dir, tmp_path):
    run = config(data_dir, tmp_path)
    data = load_dataset("mnist", data_dir)
    train_x, train_y, (val_x, val_y) = trainer_module.split_validation(data, run)
    split = stratified_split(data.train_y, 0.25, run.seed)
    assert torch.equal(train_x, data.train_x[split.train])
    assert torch.equal(val_x, data.train_x[split.validation])
    assert len(train_y) + len(val_y) == len(data.train_y) and len(val_y) > 0


def test_val_acc_is_logged_each_epoch_and_the_test_set_read_after_the_last(
    data_dir, tmp_path, monkeypatch
):
    data = load_dataset("mnist", data_dir)
    sizes = []
    original = trainer_module.evaluate

    def counting(predictor, x, y, **kwargs):
        sizes.append("test" if torch.equal(x, data.test_x) else len(y))
        return original(predictor, x, y, **kwargs)

    monkeypatch.setattr(trainer_module, "evaluate", counting)
    result = train(config(data_dir, tmp_path, test_every_epoch=False), progress=False)
    assert [("val_acc" in row, "test_acc" in row) for row in result.metrics] == [
        (True, False), (True, False), (True, True)
    ]  # fmt: skip
    held_out = len(stratified_split(data.train_y, 0.25, 0).validation)
    assert sizes == [held_out, held_out, held_out, "test"]
    for row in result.metrics:
        assert 0 <= row["val_acc"] <= 100
