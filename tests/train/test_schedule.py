import pytest

from zconf.train import phase_for_epoch


@pytest.mark.parametrize(
    ("epoch", "predictor_epochs", "generator_epochs", "expected"),
    [
        (0, 1, 1, "predictor"),
        (1, 1, 1, "generator"),
        (2, 1, 1, "predictor"),
        (0, 2, 1, "predictor"),
        (1, 2, 1, "predictor"),
        (2, 2, 1, "generator"),
        (3, 2, 1, "predictor"),
        (1, 1, 3, "generator"),
        (3, 1, 3, "generator"),
        (4, 1, 3, "predictor"),
    ],
)
def test_alternating_table(epoch, predictor_epochs, generator_epochs, expected):
    assert phase_for_epoch(epoch, predictor_epochs, generator_epochs) == expected


def test_joint_schedule():
    assert {phase_for_epoch(e, schedule="joint") for e in range(5)} == {"joint"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epoch": 0, "predictor_epochs": 0}, "Phase lengths"),
        ({"epoch": 0, "generator_epochs": -1}, "Phase lengths"),
        ({"epoch": -1}, "epoch"),
        ({"epoch": 0, "schedule": "random"}, "schedule"),
    ],
)
def test_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        phase_for_epoch(**kwargs)
