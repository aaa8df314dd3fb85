from rerank_operator.reconcile.conditions import Desired, find, merge_conditions

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:01:00Z"


def test_new_conditions_get_now_and_generation() -> None:
    out = merge_conditions([], [Desired("Ready", "False", "AwaitingFirstProbe", "m")], generation=3, now=T0)
    assert out == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "AwaitingFirstProbe",
            "message": "m",
            "lastTransitionTime": T0,
            "observedGeneration": 3,
        }
    ]


def test_transition_time_moves_only_when_status_flips() -> None:
    first = merge_conditions([], [Desired("Ready", "False", "RollingOut", "a")], generation=1, now=T0)
    same_status = merge_conditions(
        first, [Desired("Ready", "False", "PodsPending", "b")], generation=2, now=T1
    )
    assert same_status[0]["lastTransitionTime"] == T0
    assert same_status[0]["reason"] == "PodsPending"
    assert same_status[0]["observedGeneration"] == 2
    flipped = merge_conditions(same_status, [Desired("Ready", "True", "Healthy")], generation=2, now=T1)
    assert flipped[0]["lastTransitionTime"] == T1


def test_conditions_are_ordered_and_findable() -> None:
    out = merge_conditions(
        [],
        [Desired("Stalled", "False", "AsExpected"), Desired("Ready", "True", "Healthy")],
        generation=1,
        now=T0,
    )
    assert [c["type"] for c in out] == ["Ready", "Stalled"]
    found = find(out, "Stalled")
    assert found is not None and found["reason"] == "AsExpected"
    assert find(out, "Degraded") is None


def test_long_messages_are_capped() -> None:
    out = merge_conditions([], [Desired("Ready", "False", "X", "x" * 40000)], generation=1, now=T0)
    assert len(out[0]["message"]) == 32768
