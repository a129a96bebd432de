"""The sequence data sets of Lectures 9 and 10: reproducible, shaped as documented, checked."""

import numpy as np
import pytest

from dlcc.data import sequences as seq


def test_langevin_is_deterministic_and_visits_both_wells():
    a = seq.langevin_double_well(8, 1500, seed=3)
    b = seq.langevin_double_well(8, 1500, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (8, 1500) and a.dtype == np.float32
    assert not np.array_equal(a, seq.langevin_double_well(8, 1500, seed=4))
    state = seq.metastable_state(a)
    assert (np.diff(state, axis=1) != 0).sum() > 8  # hops happen at the default temperature
    # Positions concentrate in the wells at -1 and +1 (Boltzmann density ~ exp(-U / kT)).
    assert np.mean(np.abs(np.abs(a) - 1) < 0.5) > 0.75
    # A colder system hops less.
    cold = seq.metastable_state(seq.langevin_double_well(8, 1500, kT=0.1, seed=3))
    assert (np.diff(cold, axis=1) != 0).sum() < (np.diff(state, axis=1) != 0).sum()


def test_double_well_force_is_minus_the_gradient():
    x = np.linspace(-2, 2, 9)
    u = lambda z: 1.5 * (z * z - 1) ** 2  # noqa: E731
    h = 1e-6
    np.testing.assert_allclose(seq.double_well_force(x, 1.5), -(u(x + h) - u(x - h)) / (2 * h),
                               atol=1e-5)


def test_metastable_state_uses_cores():
    x = np.array([[-1.0, -0.2, 0.3, -0.1, 0.7, 0.2, -0.3, -0.8]])
    np.testing.assert_array_equal(seq.metastable_state(x), [[0, 0, 0, 0, 1, 1, 1, 0]])
    with pytest.raises(ValueError, match="core must lie"):
        seq.metastable_state(x, core=1.5)


def test_windows_and_targets():
    series = np.arange(20).reshape(2, 10)
    inputs, target = seq.windows(series, 3, horizon=2, step=2)
    np.testing.assert_array_equal(inputs[0], [0, 1, 2])
    assert series[tuple(target[0])] == 4
    np.testing.assert_array_equal(inputs[-1], [14, 15, 16])
    assert series[tuple(target[-1])] == 18
    assert len(inputs) == len(target) == 6  # starts 0, 2, 4 in each series
    with pytest.raises(ValueError, match="too short"):
        seq.windows(series, 9, horizon=2)
    with pytest.raises(ValueError, match="length must be a positive integer"):
        seq.windows(series, 0)


def test_dna_motifs_plants_the_motif_where_it_says():
    x, y, pos = seq.dna_motifs(200, 40, seed=1)
    assert x.shape == (200, 40, 4) and np.all(x.sum(-1) == 1)
    assert y.sum() == 100 and np.all((pos >= 0) == (y == 1))
    tokens = x.argmax(-1)
    consensus = seq.MOTIF_PWM.argmax(1)
    planted = np.stack([tokens[i, p:p + 8] for i, p in zip(np.flatnonzero(y), pos[y == 1],
                                                             strict=True)])
    # Planted copies match the consensus far above chance (1/4 per base).
    assert (planted == consensus).mean() > 0.6
    np.testing.assert_array_equal(x, seq.dna_motifs(200, 40, seed=1)[0])
    with pytest.raises(ValueError, match="shorter than the motif"):
        seq.dna_motifs(10, 5)
    with pytest.raises(ValueError, match="pwm must be"):
        seq.dna_motifs(10, 20, pwm=np.ones((3, 4)))


def test_peptides_tokens_and_masks():
    pytest.importorskip("modlamp")
    data = seq.peptides()
    assert data.tokens.shape == (5200, 174) and data.labels.sum() == 2600
    lengths = data.mask.sum(1)
    np.testing.assert_array_equal(lengths, [len(s) for s in data.sequences])
    assert np.all(data.tokens[~data.mask] == 0) and np.all(data.tokens[data.mask] > 0)
    first = data.sequences[0]
    assert "".join(seq.AMINO_ACIDS[t - 1] for t in data.tokens[0, :len(first)]) == first
    assert seq.peptides(max_len=50).tokens.shape == (5200, 50)


def test_encode_peptides_errors():
    tokens, mask = seq.encode_peptides(["AC", "W"])
    np.testing.assert_array_equal(tokens, [[1, 2], [19, 0]])
    with pytest.raises(ValueError, match="not one of the 20"):
        seq.encode_peptides(["ACX"])
    with pytest.raises(TypeError, match="list of amino-acid strings"):
        seq.encode_peptides("ACD")


def test_similarity_groups_keep_near_duplicates_together():
    seqs = ["GLFDIVKKVVGALGSL", "GLFDIVKKVVGALGSL", "GLFDIVKKVVGALGSA", "MKTAYIAKQRQISFVK",
            "PEPTWNDRCHYQ"]
    groups = seq.similarity_groups(seqs)
    assert groups[0] == groups[1] == groups[2]
    assert len({groups[0], groups[3], groups[4]}) == 3
    parts = seq.group_split(np.repeat(np.arange(50), 4), (0.6, 0.4), seed=0)
    assert sum(len(p) for p in parts) == 200
    group_of = np.repeat(np.arange(50), 4)
    assert set(group_of[parts[0]]).isdisjoint(group_of[parts[1]])
    assert abs(len(parts[0]) - 120) <= 4
    with pytest.raises(ValueError, match="fractions must be positive"):
        seq.group_split(group_of, (0.5, 0.6))


def test_book_corpus_splits_by_chapter(tmp_path):
    for name, text in (("a.md", "alpha " * 50), ("b.md", "beta " * 10), ("c.md", "gamma\n" * 8),
                       ("_skip/d.md", "hidden")):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    corpus = seq.book_corpus(tmp_path, val_fraction=0.2, seed=0)
    assert len(corpus.train) + len(corpus.val) == 300 + 50 + 48
    assert "hidden" not in corpus.decode(corpus.train) + corpus.decode(corpus.val)
    assert corpus.decode(corpus.val) in {"beta " * 10, "gamma\n" * 8, "beta " * 10 + "gamma\n" * 8}
    assert corpus.decode(corpus.encode("beta")) == "beta"
    with pytest.raises(ValueError, match="not in the corpus vocabulary"):
        corpus.encode("zebra")
    with pytest.raises(FileNotFoundError, match="chapter sources"):
        seq.book_corpus(tmp_path / "_skip")


def test_book_corpus_of_this_book():
    corpus = seq.book_corpus()  # found next to the library in this checkout
    assert len(corpus.val_chapters) >= 1 and len(corpus.val) >= 0.1 * (len(corpus.train)
                                                                      + len(corpus.val))
    assert corpus.decode(corpus.encode("attention")) == "attention"
    np.testing.assert_array_equal(corpus.val, seq.book_corpus(seed=0).val)  # deterministic


def test_langevin_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        seq.langevin_double_well(2, 0)
    with pytest.raises(ValueError, match="kT must be a positive number"):
        seq.langevin_double_well(2, 10, kT=-1.0)
    with pytest.raises(ValueError, match="too large for barrier"):
        seq.langevin_double_well(2, 10, dt=0.1)


def test_book_from_a_github_install_is_that_commits_archive(tmp_path, monkeypatch):
    """Colab installs dlcc from GitHub: the book comes from the archive of that commit (here
    a local tarball stands in for the download; the URL and cache place are checked)."""
    import tarfile

    import pooch

    source = tmp_path / "dlcc-abc123" / "book"
    source.mkdir(parents=True)
    (source / "intro.md").write_text("# Intro\n")
    archive = tmp_path / "archive.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "dlcc-abc123", arcname="dlcc-abc123")
    asked = {}

    def fake_retrieve(url, known_hash, path, fname, processor, progressbar):
        asked.update(url=url, fname=fname)
        return processor(str(archive), "download", None)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    monkeypatch.setenv("DLCC_DATA", str(tmp_path / "cache"))
    origin = {"url": "https://github.com/deeplearningcrashcourse/dlcc",
              "vcs_info": {"vcs": "git", "commit_id": "abc123"}}
    book = seq._book_from_github(origin)
    assert asked == {"url": "https://codeload.github.com/deeplearningcrashcourse/dlcc/tar.gz/"
                            "abc123", "fname": "abc123.tar.gz"}
    assert (book / "intro.md").read_text() == "# Intro\n"
    assert seq._book_from_github({"url": "file:///somewhere"}) is None
