import socket
import threading

import pytest

from c4clean.cleaning import sentences
from c4clean.cleaning.sentences import count_sentences, split_sentences

nltk = pytest.importorskip("nltk")
from nltk.tokenize.punkt import PunktSentenceTokenizer  # noqa: E402

ABBREVIATIONS = "Mr. Smith met Dr. Jones at 5 p.m. in Washington. They talked."


def test_c4_parameters_know_english_abbreviations_untrained_punkt_does_not():
    # The trained English parameters keep "Mr." / "Dr." inside the sentence; an untrained Punkt
    # (what one gets without C4's parameters) splits after them.
    assert split_sentences(ABBREVIATIONS) == [
        "Mr. Smith met Dr. Jones at 5 p.m. in Washington.",
        "They talked.",
    ]
    untrained = PunktSentenceTokenizer().tokenize(ABBREVIATIONS)
    assert len(untrained) > 2
    assert untrained[0] == "Mr."


def test_count_matches_split_and_limit_caps_it():
    text = "One is here. Two is here! Three is here? Four is here."
    assert count_sentences(text) == len(split_sentences(text)) == 4
    assert count_sentences(text, limit=2) == 2
    assert count_sentences(text, limit=9) == 4
    assert count_sentences("") == 0
    assert count_sentences("   \n ") == 0


def test_packaged_parameters_load_without_network_or_pickle(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle load attempted")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(nltk, "download", no_network)
    monkeypatch.setattr("pickle.load", no_pickle)
    monkeypatch.setattr("pickle.loads", no_pickle)
    monkeypatch.setattr(sentences.punkt_tokenizer, "_value", None)
    monkeypatch.setattr(nltk.data, "path", ["/nonexistent"] + list(nltk.data.path))
    assert count_sentences(ABBREVIATIONS) == 2
    assert nltk.data.path[0] == str(sentences.NLTK_DATA_DIR)


def test_loaded_once_under_concurrent_first_use(monkeypatch):
    monkeypatch.setattr(sentences.punkt_tokenizer, "_value", None)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(sentences.punkt_tokenizer())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and all(t is seen[0] for t in seen)


def test_loading_punkt_and_minhash_leaves_the_rest_of_their_libraries_out_until_used():
    """NLTK's and datasketch's package imports would pull in all of them and SciPy (~0.7 s each per
    worker): Punkt and MinHash load without, and the packages still work in full afterwards."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from c4clean.cleaning.sentences import count_sentences\n"
        "from c4clean.cleaning.minhash import MinHasher\n"
        "assert count_sentences('Mr. Smith came. He sat.') == 2\n"
        "signature = MinHasher().signature('one two three four five six seven')\n"
        "assert not [m for m in ('scipy', 'nltk.corpus', 'datasketch.lsh') if m in sys.modules]\n"
        "import nltk, datasketch, scipy.stats\n"
        "assert nltk.word_tokenize('Hi there.') == ['Hi', 'there', '.']\n"
        "assert datasketch.MinHashLSH(threshold=0.5, num_perm=128) is not None\n"
        "assert datasketch.MinHash is datasketch.minhash.MinHash\n"
        "assert scipy.stats.norm.cdf(0.0) == 0.5\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
