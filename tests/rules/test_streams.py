"""A rule's random stream: a large draw is made in blocks side by side, with numbers that do not
depend on the threads, and a stream saved and loaded draws what it would have drawn. The draws
for a GPU (made there, from a seed the stream gives) are taken on the CPU by making
``drawn_where_used`` say so. A compiled graph draws what the eager code draws."""

import pytest
import torch

from bpfree.rules.common import streams
from bpfree.rules.common.streams import BLOCK, RandomStream, fill_normal, seeded_generator


@pytest.fixture
def threads():
    """set(n): torch's intra-op threads for the test, restored after it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.fixture(params=["by the stream's generator", "seeded where used"])
def drawn(request, monkeypatch):
    """The two ways a Gaussian draw is made: on the CPU by the stream's generator, or as on a
    GPU, where it is used, by a generator seeded from the stream."""
    if request.param == "seeded where used":
        monkeypatch.setattr(streams, "drawn_where_used", lambda device: True)
    return request.param


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


def test_a_draw_of_some_positions_fills_only_their_blocks():
    size, needed = 5 * BLOCK + 17, (BLOCK + 10, 3 * BLOCK - 10)
    whole = fill_normal(torch.empty(size), torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    part = fill_normal(torch.full((size,), float("nan")), generator, needed=needed)
    assert torch.equal(part[needed[0] : needed[1]], whole[needed[0] : needed[1]])
    filled = ~part.isnan()
    assert filled[BLOCK : 3 * BLOCK].all() and not filled[:BLOCK].any()
    assert not filled[3 * BLOCK :].any()
    assert torch.equal(torch.randn(4, generator=generator), _after(size))


def _after(size):
    generator = torch.Generator().manual_seed(3)
    fill_normal(torch.empty(size), generator)
    return torch.randn(4, generator=generator)


@pytest.mark.parametrize("shape", [(8, BLOCK // 3 + 5), (6, 7)])  # blocks, and one small draw
def test_each_replica_draws_its_rows_of_the_whole_batch(shape, drawn):
    """The rows a replica keeps are those of one process's draw for the whole batch, and the
    stream moves on as after that draw (the replica fills only the blocks of its rows)."""
    like = torch.empty(0, dtype=torch.float64)
    whole_stream = RandomStream(seed=5, purpose="test")
    (whole,) = whole_stream.normal([shape], like)
    (after,) = whole_stream.normal([(3,)], like)
    total = shape[0]
    for start, stop in [(0, 3), (3, total), (total - 1, total)]:
        stream = RandomStream(seed=5, purpose="test")
        (mine,) = stream.normal([(stop - start, *shape[1:])], like, rows=(start, total))
        assert torch.equal(mine, whole[start:stop])
        assert torch.equal(stream.normal([(3,)], like)[0], after)


def test_a_stream_resumes_where_it_was_saved(threads, drawn):
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


def test_a_draw_in_place_is_the_draw_of_the_same_shapes(drawn):
    like = torch.empty(0)
    shapes = [(3, BLOCK), (5, 7), (7, 5)]
    expected = RandomStream(seed=5, purpose="test").normal(shapes, like)
    kept = [torch.empty(3, BLOCK), torch.empty(5, 7), torch.empty(5, 7).T]  # the last strided
    RandomStream(seed=5, purpose="test").normal_(kept)
    assert all(torch.equal(a, b) for a, b in zip(kept, expected, strict=True))


def test_a_draw_seeded_where_used_takes_one_number_of_the_stream_per_tensor(monkeypatch):
    """Where it is used, a tensor is drawn by a generator seeded with the stream's next 62-bit
    number, whatever its size: the host draws one number per tensor."""
    monkeypatch.setattr(streams, "drawn_where_used", lambda device: True)
    like = torch.empty(0, dtype=torch.float64)
    stream = RandomStream(seed=5, purpose="test")
    big, small = stream.normal([(3, BLOCK + 5), (7,)], like)
    generator = seeded_generator(5, "test")  # where the stream starts
    for tensor in (big, small):
        seed = int(torch.randint(2**62, (), generator=generator))
        expected = torch.empty(tensor.shape, dtype=like.dtype).normal_(
            generator=torch.Generator().manual_seed(seed)
        )
        assert torch.equal(tensor, expected)


def test_a_uniform_draw_is_the_streams_or_seeded_by_it(drawn):
    """On the CPU the stream's generator draws it; where it is used, a generator seeded with
    the stream's next number. Either way a resumed stream draws it again."""
    like = torch.empty(0, dtype=torch.float64)
    stream = RandomStream(seed=5, purpose="test")
    saved = {k: v.clone() for k, v in stream.state_dict().items()}
    draw = stream.uniform((4, 6), 0.5, like)
    generator = seeded_generator(5, "test")  # where the stream starts
    if drawn == "seeded where used":
        generator = torch.Generator().manual_seed(
            int(torch.randint(2**62, (), generator=generator))
        )
    expected = torch.empty(4, 6, dtype=like.dtype).uniform_(-0.5, 0.5, generator=generator)
    assert torch.equal(draw, expected)
    resumed = RandomStream(seed=0, purpose="other")
    resumed.load_state_dict(saved)
    assert torch.equal(resumed.uniform((4, 6), 0.5, like), draw)


def test_a_compiled_graph_draws_what_the_eager_code_draws(drawn):
    """Each method of the stream, inside one graph through inductor: the same numbers, and the
    stream left at the same position (the draws are opaque calls that advance it)."""

    def draws(stream, like, kept):
        small, rows = stream.normal([(4, 7), (3, 600)], like, rows=(2, 1000))
        stream.normal_(kept)
        return [
            small,
            rows,
            *kept,
            stream.uniform((5, 5), 0.3, like),
            stream.integers(1, 10, (6,)),
            stream.permutation(9),
            *stream.normal([(2, 3)], like),
        ]

    like = torch.empty(0, dtype=torch.float64)
    eager, compiled = RandomStream(7, "graph"), RandomStream(7, "graph")
    kept = [torch.empty(2, 3, dtype=torch.float64), torch.empty(BLOCK + 5, dtype=torch.float64)]
    expected = [t.clone() for t in draws(eager, like, kept)]
    got = torch.compile(draws, fullgraph=True)(compiled, like, kept)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(compiled.state, eager.state)
