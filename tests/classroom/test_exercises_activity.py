"""The activity chapter's exercise checkers accept right answers and explain wrong ones."""
import pytest
import torch

from sepbook.classroom import exercises


def _solution_weighting(probabilities, threshold, median_frames, pad="repeat", smooth=True):
    """The chapter's hidden solution, written out independently of the package."""
    on = (probabilities >= threshold).float()
    if not smooth:
        return on
    half = median_frames // 2
    if pad == "repeat":
        padded = torch.cat([on[:, :1].expand(-1, half), on, on[:, -1:].expand(-1, half)], dim=1)
    else:
        padded = torch.nn.functional.pad(on, (half, half))
    return padded.unfold(1, median_frames, 1).median(dim=-1).values


def _solution_labels(magnitudes, threshold_db, power=2, guard=True):
    energy = magnitudes.pow(power).sum(dim=-2)
    loudest = energy.amax(dim=-1, keepdim=True)
    labels = energy >= loudest * 10 ** (threshold_db / 10)
    return labels & (energy > 0) if guard else labels


def test_check_activity_weighting_accepts_the_solution():
    assert "correct" in exercises.check_activity_weighting(_solution_weighting)


@pytest.mark.parametrize("answer, message", [
    (lambda p, t, m: _solution_weighting(p, t, m, smooth=False), "median filter"),
    (lambda p, t, m: _solution_weighting(p, t, m, pad="zeros"), "wrong at the ends"),
    (lambda p, t, m: torch.nn.functional.avg_pool1d(_solution_weighting(p, t, m, smooth=False)[None], m, 1,
                                                    m // 2)[0], "0 or 1"),
    (lambda p, t, m: _solution_weighting(p, 1 - t, m), "weights differ"),
    (lambda p, t, m: _solution_weighting(p, t, m).T, "shaped"),
    (lambda p, t, m: 1 / 0, "ZeroDivisionError"),
])
def test_check_activity_weighting_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        exercises.check_activity_weighting(answer)


def test_check_frame_activity_accepts_the_solution():
    assert "correct" in exercises.check_frame_activity(_solution_labels)


@pytest.mark.parametrize("answer, message", [
    (lambda m, db: _solution_labels(m, db, guard=False), "silent throughout"),
    (lambda m, db: _solution_labels(m, db / 2), "not 20"),
    (lambda m, db: _solution_labels(m, db, power=1), r"not \|S\|\^2"),
    (lambda m, db: _solution_labels(m, db)[0], "shaped"),
])
def test_check_frame_activity_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        exercises.check_frame_activity(answer)
