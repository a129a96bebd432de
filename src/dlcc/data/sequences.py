"""Sequence data for Lectures 9 and 10, offline and reproducible from a seed.

- :func:`langevin_double_well`: overdamped Langevin trajectories in a double-well potential
  (a simulator), with :func:`metastable_state` and :func:`windows` to cut them into examples.
- :func:`dna_motifs`: random DNA with a motif from a position weight matrix planted in half of
  the sequences (a simulator), returning where it was planted.
- :func:`peptides`: 5,200 real peptides, half antimicrobial (modlAMP's AMPvsUniProt set), as
  integer tokens with padding masks; :func:`similarity_groups` and :func:`group_split` keep
  near-identical sequences on one side of a split.
- :func:`book_corpus`: the text of this book's chapters, split into training and validation
  by chapter, for a character-level language model.

Everything is returned as numpy arrays; ``torch.from_numpy`` turns them into tensors.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np

from dlcc.scratch._checks import integer

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
DNA = "ACGT"


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


# --- Langevin dynamics ------------------------------------------------------------------------

def double_well_force(x: np.ndarray, barrier: float = 1.0) -> np.ndarray:
    """-dU/dx for U(x) = barrier * (x^2 - 1)^2: wells at x = -1 and +1, a barrier at 0."""
    return -4.0 * barrier * x * (x * x - 1.0)


def langevin_double_well(n_traj: int = 16, n_steps: int = 2000, *, dt: float = 0.01,
                         kT: float = 0.25, barrier: float = 1.0, stride: int = 10,
                         seed: int = 0) -> np.ndarray:
    """Overdamped Langevin trajectories in U(x) = barrier * (x^2 - 1)^2, shape (n_traj, n_steps).

    Euler-Maruyama with time step ``dt`` (friction and mass set to 1):
    x <- x + F(x) dt + sqrt(2 kT dt) xi, xi ~ N(0, 1), saving every ``stride``-th step, so the
    saved frames are ``stride * dt`` apart. Each trajectory starts in a well chosen at random.
    With the defaults the barrier is 4 kT, and a particle hops between wells every few hundred
    frames (Kramers' rate). Deterministic for a seed; float32.
    """
    n_traj, n_steps, stride = (integer(k, v) for k, v in
                               (("n_traj", n_traj), ("n_steps", n_steps), ("stride", stride)))
    dt, kT, barrier = (_positive(k, v) for k, v in (("dt", dt), ("kT", kT), ("barrier", barrier)))
    if dt * 8 * barrier > 0.5:
        raise ValueError(f"dt={dt} is too large for barrier={barrier}: Euler-Maruyama needs "
                         f"dt * 8 * barrier <= 0.5 to stay stable in the wells")
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], size=n_traj)
    out = np.empty((n_traj, n_steps), dtype=np.float32)
    noise = math.sqrt(2 * kT * dt)
    for t in range(n_steps):
        for _ in range(stride):
            x = x + double_well_force(x, barrier) * dt + noise * rng.standard_normal(n_traj)
        out[:, t] = x
    return out


def metastable_state(x: np.ndarray, core: float = 0.5) -> np.ndarray:
    """Which well (0 for x < 0, 1 for x > 0) each frame of x (..., T) belongs to, by cores.

    A trajectory is in state 1 from the frame it enters the core x > ``core`` until it
    enters the other core x < -``core``: crossings of the barrier that fall back count as no
    transition. Frames before the first core visit take the sign of x.
    """
    if not isinstance(x, np.ndarray) or x.ndim < 1:
        raise ValueError(f"x must be a numpy array of positions (..., T), got {type(x).__name__}")
    if not 0 <= core < 1:
        raise ValueError(f"core must lie in [0, 1), got {core}")
    state = np.empty(x.shape, dtype=np.int64)
    current = (x[..., 0] > 0).astype(np.int64)
    for t in range(x.shape[-1]):
        current = np.where(x[..., t] > core, 1, np.where(x[..., t] < -core, 0, current))
        state[..., t] = current
    return state


def windows(series: np.ndarray, length: int, horizon: int = 1, step: int = 1):
    """Cut series (N, T) into inputs (M, length) and the index of each window's target.

    Returns ``(inputs, target_index)``: window m covers frames ``[s, s + length)`` of series
    ``i``, and ``target_index[m] = (i, s + length - 1 + horizon)`` is the frame to predict, so
    ``series[tuple(target_index.T)]`` are the targets. ``horizon = 0`` targets the last frame.
    """
    if not isinstance(series, np.ndarray) or series.ndim != 2:
        raise ValueError(f"series must be a 2-D numpy array (N, T), got "
                         f"{getattr(series, 'shape', type(series).__name__)}")
    length, step = integer("length", length), integer("step", step)
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 0:
        raise ValueError(f"horizon must be a non-negative integer, got {horizon!r}")
    n, t = series.shape
    starts = np.arange(0, t - length - horizon + 1, step)
    if starts.size == 0:
        raise ValueError(f"series of length {t} is too short for length={length} and "
                         f"horizon={horizon}")
    idx = starts[:, None] + np.arange(length)
    inputs = series[:, idx].reshape(n * starts.size, length)
    rows = np.repeat(np.arange(n), starts.size)
    target = np.stack([rows, np.tile(starts + length - 1 + horizon, n)], axis=1)
    return inputs, target


# --- motif-planted DNA ------------------------------------------------------------------------

#: The planted motif's position weight matrix: probabilities of A, C, G, T at its 8 positions
#: (a TATA-box-like consensus TATAAAAG; two thirds of the planted copies differ from it).
MOTIF_PWM = np.array([
    [0.04, 0.03, 0.03, 0.90], [0.90, 0.03, 0.03, 0.04], [0.04, 0.03, 0.03, 0.90],
    [0.88, 0.03, 0.03, 0.06], [0.88, 0.03, 0.03, 0.06], [0.88, 0.03, 0.03, 0.06],
    [0.85, 0.05, 0.05, 0.05], [0.10, 0.05, 0.80, 0.05],
])


def dna_motifs(n: int = 2000, length: int = 100, *, pwm: np.ndarray | None = None,
               seed: int = 0):
    """Random DNA (uniform A, C, G, T) with a motif planted in half of the sequences.

    Each positive sequence gets one copy of the motif, sampled position by position from
    ``pwm`` (default :data:`MOTIF_PWM`), at a uniformly random place. Returns
    ``(x, y, positions)``: one-hot x float32 (n, length, 4) in the order A, C, G, T; labels y
    int64 (n,) (1 = motif planted); positions int64 (n,), the motif's first base (-1 for
    negatives). ``x.argmax(-1)`` gives integer tokens.
    """
    n, length = integer("n", n), integer("length", length)
    pwm = MOTIF_PWM if pwm is None else np.asarray(pwm, dtype=float)
    if pwm.ndim != 2 or pwm.shape[1] != 4 or not np.allclose(pwm.sum(axis=1), 1) \
            or (pwm < 0).any():
        raise ValueError(f"pwm must be (motif length, 4) with rows of probabilities summing "
                         f"to 1, got shape {pwm.shape}")
    if pwm.shape[0] > length:
        raise ValueError(f"length={length} is shorter than the motif ({pwm.shape[0]} bases)")
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 4, size=(n, length))
    y = (rng.permutation(n) < n // 2).astype(np.int64)  # exactly half positive
    positions = np.where(y == 1, rng.integers(0, length - pwm.shape[0] + 1, size=n), -1)
    cumulative = pwm.cumsum(axis=1)
    for i in np.flatnonzero(y):
        draws = rng.random(pwm.shape[0])
        bases = (draws[:, None] > cumulative).sum(axis=1).clip(max=3)
        tokens[i, positions[i]:positions[i] + pwm.shape[0]] = bases
    x = np.eye(4, dtype=np.float32)[tokens]
    return x, y, positions.astype(np.int64)


# --- peptides ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Peptides:
    """Peptides as tokens: ``tokens`` int64 (N, L) with 0 for padding and 1..20 for
    :data:`AMINO_ACIDS`; ``mask`` bool (N, L), True on residues; ``labels`` int64 (N,), 1 =
    antimicrobial; ``sequences``, the strings."""

    tokens: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    sequences: list[str]


def encode_peptides(sequences: list[str], max_len: int | None = None) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """Tokens (N, L) and padding mask for amino-acid strings, L = longest (or ``max_len``,
    cutting longer sequences)."""
    if isinstance(sequences, str) or not all(isinstance(s, str) for s in sequences):
        raise TypeError("sequences must be a list of amino-acid strings")
    lookup = {a: i + 1 for i, a in enumerate(AMINO_ACIDS)}
    for s in sequences:
        bad = set(s) - set(lookup)
        if bad:
            raise ValueError(f"sequence {s[:20]!r} holds {sorted(bad)}, not one of the 20 "
                             f"amino acids {AMINO_ACIDS}")
    longest = max((len(s) for s in sequences), default=1)
    length = longest if max_len is None else integer("max_len", max_len)
    tokens = np.zeros((len(sequences), length), dtype=np.int64)
    for i, s in enumerate(sequences):
        codes = [lookup[a] for a in s[:length]]
        tokens[i, :len(codes)] = codes
    return tokens, tokens > 0


def peptides(max_len: int | None = None) -> Peptides:
    """modlAMP's AMPvsUniProt set: 2,600 antimicrobial peptides and 2,600 UniProt peptides
    (lengths 7 to 174, mean 33) that are not known to be antimicrobial.

    Shipped in the ``modlamp`` package (BSD-3-Clause; Mueller et al. 2017). Sequences longer
    than ``max_len`` are cut; some sequences occur more than once, so split with
    :func:`similarity_groups` and :func:`group_split`.
    """
    try:
        from importlib.resources import files

        path = files("modlamp") / "data" / "AMPvsUniProt.csv"
    except ModuleNotFoundError:
        raise ModuleNotFoundError("peptides() reads the data set shipped with modlamp: "
                                  "pip install modlamp") from None
    lines = path.read_text().splitlines()[1:]  # the first line is a header of counts
    sequences = [line.split(",")[0] for line in lines if line]
    labels = np.array([int(line.split(",")[1]) for line in lines if line], dtype=np.int64)
    tokens, mask = encode_peptides(sequences, max_len)
    return Peptides(tokens, mask, labels, sequences)


def similarity_groups(sequences: list[str], k: int = 3, threshold: float = 0.5) -> np.ndarray:
    """Group ids (N,) linking sequences that share at least ``threshold`` of their k-mers.

    Two sequences are linked when the number of distinct k-mers they share is at least
    ``threshold`` times the smaller one's count; groups are the connected components of these
    links, so identical and near-identical sequences always share a group.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    k = integer("k", k)
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, s in enumerate(sequences):
        kmers = {s[j:j + k] for j in range(max(len(s) - k + 1, 1))}
        for km in kmers:
            rows.append(i)
            cols.append(vocab.setdefault(km, len(vocab)))
    a = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sequences), len(vocab)))
    counts = np.asarray(a.sum(axis=1)).ravel()
    shared = (a @ a.T).tocoo()
    smaller = np.minimum(counts[shared.row], counts[shared.col])
    keep = shared.data >= threshold * smaller
    links = csr_matrix((np.ones(keep.sum()), (shared.row[keep], shared.col[keep])),
                       shape=shared.shape)
    return connected_components(links, directed=False)[1]


def group_split(groups: np.ndarray, fractions=(0.7, 0.15, 0.15), seed: int = 0):
    """Index arrays, one per fraction, that never split a group: whole groups are dealt out in
    a random order until each part holds about its fraction of the examples."""
    groups = np.asarray(groups)
    fractions = np.asarray(fractions, dtype=float)
    if fractions.ndim != 1 or (fractions <= 0).any() or not np.isclose(fractions.sum(), 1):
        raise ValueError(f"fractions must be positive and sum to 1, got {fractions.tolist()}")
    rng = np.random.default_rng(seed)
    ids, sizes = np.unique(groups, return_counts=True)
    order = rng.permutation(ids.size)
    bounds = np.cumsum(fractions) * groups.size
    filled = np.cumsum(sizes[order])
    part_of_group = np.searchsorted(bounds, filled - sizes[order] / 2).clip(max=len(fractions) - 1)
    part = np.empty(ids.size, dtype=int)
    part[order] = part_of_group
    example_part = part[np.searchsorted(ids, groups)]
    return [np.flatnonzero(example_part == p) for p in range(len(fractions))]


# --- the book as a text corpus ----------------------------------------------------------------

def _book_from_github(origin: dict) -> Path | None:
    """The book of the commit that pip installed dlcc from GitHub (as Colab's install cell
    does), downloaded once into the data cache; None if dlcc did not come from GitHub."""
    match = re.match(r"(?:git\+)?https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?$",
                     origin.get("url", ""))
    commit = origin.get("vcs_info", {}).get("commit_id")
    if not match or not commit:
        return None
    import pooch

    from .download import cache_root

    # A commit's archive never changes: the commit id pins its content.
    files = pooch.retrieve(f"https://codeload.github.com/{match[1]}/tar.gz/{commit}",
                           known_hash=None, path=cache_root() / "book-sources",
                           fname=f"{commit}.tar.gz", processor=pooch.Untar(),
                           progressbar=False)
    intro = [Path(f) for f in files if Path(f).name == "intro.md"
             and Path(f).parent.name == "book"]
    return intro[0].parent if intro else None


def _default_book_dir() -> Path:
    """The book next to the library: in a checkout (editable install), in the folder that pip
    installed dlcc from, or, for an install from GitHub, that commit's book, downloaded."""
    checkout = Path(__file__).resolve().parents[3] / "book"
    if (checkout / "intro.md").is_file():
        return checkout
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        origin = json.loads(distribution("dlcc").read_text("direct_url.json") or "{}")
    except PackageNotFoundError:
        origin = {}
    if origin.get("url", "").startswith("file://"):
        local = Path(url2pathname(urlparse(origin["url"]).path)) / "book"
        if (local / "intro.md").is_file():
            return local
    downloaded = _book_from_github(origin)
    if downloaded is not None:
        return downloaded
    raise FileNotFoundError(
        "book_corpus() found no book next to the installed dlcc; clone the repository "
        "(git clone https://github.com/deeplearningcrashcourse/dlcc) and pass "
        "book_dir='dlcc/book'")


@dataclass(frozen=True)
class Corpus:
    """Character-level text: ``train`` and ``val`` as int64 codes into ``vocab`` (a string of
    the distinct characters, sorted); ``val_chapters``, the files held out."""

    train: np.ndarray
    val: np.ndarray
    vocab: str
    val_chapters: list[str]

    def decode(self, codes) -> str:
        return "".join(self.vocab[int(c)] for c in codes)

    def encode(self, text: str) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(self.vocab)}
        missing = sorted(set(text) - set(lookup))
        if missing:
            raise ValueError(f"text holds characters {missing[:5]} not in the corpus vocabulary")
        return np.array([lookup[c] for c in text], dtype=np.int64)


def book_corpus(book_dir: str | Path | None = None, *, val_fraction: float = 0.1,
                seed: int = 0) -> Corpus:
    """The MyST sources of the book's chapters (``book/**/*.md``) as one character corpus.

    Whole chapters are held out for validation (a seeded choice of at least ``val_fraction``
    of the characters where the chapter sizes allow), so validation text is prose the model
    never saw, not a neighbouring sentence. Characters are restricted to printable ASCII and
    newline; others become '?'.
    """
    root = Path(book_dir) if book_dir is not None else _default_book_dir()
    files = sorted(p for p in root.rglob("*.md") if not any(
        part.startswith((".", "_")) for part in p.relative_to(root).parts))
    if len(files) < 2:
        raise FileNotFoundError(f"book_dir {root} holds {len(files)} chapter sources (*.md); "
                                f"need at least 2 to split by chapter")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")

    def clean(text: str) -> str:
        return "".join(c if c == "\n" or " " <= c <= "~" else "?" for c in text)

    texts = {str(p.relative_to(root)): clean(p.read_text(encoding="utf-8")) for p in files}
    names = list(texts)
    order = np.random.default_rng(seed).permutation(len(names))
    total = sum(len(t) for t in texts.values())
    val_names, held = [], 0
    target = val_fraction * total
    for i in order:  # take chapters in a seeded order, skipping any that would overshoot 2x
        if held >= target or len(val_names) == len(names) - 1:
            break
        if not val_names or held + len(texts[names[i]]) <= 2 * target:
            val_names.append(names[i])
            held += len(texts[names[i]])
    train_text = "".join(texts[n] for n in names if n not in val_names)
    val_text = "".join(texts[n] for n in sorted(val_names))
    vocab = "".join(sorted(set(train_text) | set(val_text)))
    lookup = {c: i for i, c in enumerate(vocab)}
    return Corpus(np.array([lookup[c] for c in train_text], dtype=np.int64),
                  np.array([lookup[c] for c in val_text], dtype=np.int64),
                  vocab, sorted(val_names))
