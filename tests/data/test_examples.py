"""Examples: parts cut to fit, padded batches whose rows keep their own loss, resumable order."""

from __future__ import annotations

import pytest
import torch

from gpt2kit.data.batch import IGNORE_INDEX, Batch
from gpt2kit.data.examples import Example, ExampleSampler, Part, collate, example_batches
from gpt2kit.errors import DataError
from gpt2kit.training import LanguageModeling
from helpers import random_model


def test_a_row_counts_the_target_only():
    inputs, labels = Example.source_target([1, 2, 3], [4, 5]).row()
    assert inputs == [1, 2, 3, 4]
    assert labels == [IGNORE_INDEX, IGNORE_INDEX, 4, 5]  # the first target token is predicted from the source


def test_fitting_cuts_the_earliest_source_at_its_end_and_keeps_the_target():
    example = Example((Part(range(10), False), Part([90, 91], False), Part([7, 8, 9], True)))
    assert example.fit(20) is example
    assert example.fit(9).parts == (Part(range(5), False), Part([90, 91], False), Part([7, 8, 9], True))
    assert example.fit(4).parts == (Part([90, 91], False), Part([7, 8, 9], True))  # the first source is gone
    assert example.fit(3).parts == (Part([90], False), Part([7, 8, 9], True))  # then the next one's end
    assert example.fit(1).parts == (Part([7, 8], True),)  # only a target too long by itself loses its end
    assert all(len(example.fit(n)) == n + 1 for n in range(1, 15))


def test_an_example_needs_two_tokens():
    with pytest.raises(DataError, match="at least two tokens"):
        Example.source_target([], [5])


def test_a_padded_row_has_the_loss_it_has_alone():
    model = random_model()
    objective = LanguageModeling(model)
    examples = [Example.source_target([10, 11, 12, 13, 14, 15], [20, 21, 22]), Example.source_target([30], [40, 41]),
                Example.source_target([50, 51, 52], [60, 61, 62, 63])]
    batch = collate(examples, pad_id=99)
    assert batch.input_ids.shape == (3, 8) and batch.attention_mask is None
    assert batch.input_ids[1, 2:].eq(99).all() and batch.labels[1, 2:].eq(IGNORE_INDEX).all()
    with torch.no_grad():
        together = objective.totals(batch)
        alone = [objective.totals(collate([e])) for e in examples]
        for i, (total, count) in enumerate(alone):  # each row of the padded batch, on its own
            row = Batch(batch.input_ids[i:i + 1], batch.labels[i:i + 1])
            assert torch.allclose(objective.totals(row)[0], total, atol=1e-5) and objective.totals(row)[1] == count
    assert together[1].item() == sum(c.item() for _, c in alone) == 3 + 2 + 4
    assert torch.allclose(together[0], sum(t for t, _ in alone), atol=1e-4)


def test_the_sampler_shuffles_each_epoch_and_resumes_where_it_was():
    examples = [Example.source_target([i], [100 + i]) for i in range(10)]
    sampler = ExampleSampler(examples, batch_size=4, seed=3)
    assert sampler.batches_per_epoch == 2
    seen = [row[0] for _ in range(5) for row in sampler.next_batch().input_ids.tolist()]  # 20 rows: two epochs
    assert sorted(seen[:10]) == sorted(seen[10:]) == list(range(10)) and seen[:10] != seen[10:]
    state = sampler.state_dict()
    after = [sampler.next_batch().input_ids for _ in range(3)]
    again = ExampleSampler(examples, batch_size=4, seed=3)
    again.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(after, [again.next_batch().input_ids for _ in range(3)], strict=True))
    other = ExampleSampler(examples, batch_size=4, seed=4)
    assert [other.next_batch().input_ids.tolist() for _ in range(3)] != [
        ExampleSampler(examples, batch_size=4, seed=3).next_batch().input_ids.tolist() for _ in range(3)]


def test_evaluation_batches_are_in_order():
    examples = [Example.source_target([i], [100 + i]) for i in range(7)]
    batches = list(example_batches(examples, batch_size=3))
    assert [b.input_ids[:, 0].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(list(example_batches(examples, batch_size=3, max_batches=2))) == 2
