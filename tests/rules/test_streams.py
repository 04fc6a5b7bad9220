"""A rule's random stream: a large draw is made in blocks side by side, with numbers that do not
depend on the threads, and a stream saved and loaded draws what it would have drawn."""

import pytest
import torch

from bpfree.rules.common.streams import BLOCK, RandomStream, fill_normal


@pytest.fixture
def threads():
    """set(n): torch's intra-op threads for the test, restored after it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_a_small_draw_is_randns():
    drawn = fill_normal(torch.empty(BLOCK), torch.Generator().manual_seed(3))
    assert torch.equal(drawn, torch.randn(BLOCK, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("size", [BLOCK + 1, 5 * BLOCK + 17])
def test_a_large_draw_is_the_same_on_any_number_of_threads(size, threads):
    def draw(count):
        threads(count)
        return fill_normal(torch.empty(size), torch.Generator().manual_seed(3))

    one = draw(1)
    assert torch.equal(one, draw(2)) and torch.equal(one, draw(3))
    blocks = one.split(BLOCK)
    assert not torch.equal(blocks[0][:16], blocks[1][:16])  # each block from its own seed
    assert abs(one.mean()) < 0.01 and abs(one.std() - 1) < 0.01


def test_a_stream_resumes_where_it_was_saved(threads):
    threads(2)
    shapes = [(3, BLOCK), (7,)]
    stream = RandomStream(seed=5, purpose="test")
    stream.normal(shapes, torch.empty(0))
    saved = {k: v.clone() for k, v in stream.state_dict().items()}
    expected = stream.normal(shapes, torch.empty(0))
    resumed = RandomStream(seed=0, purpose="other")
    resumed.load_state_dict(saved)
    drawn = resumed.normal(shapes, torch.empty(0))
    assert all(torch.equal(a, b) for a, b in zip(drawn, expected, strict=True))
    assert not torch.equal(drawn[0], stream.normal(shapes, torch.empty(0))[0])  # it moved on
