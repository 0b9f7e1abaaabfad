"""Shared fixtures: tiny CPU models so the whole suite runs in minutes on two cores. The helpers they use, and that
the tests import, are in helpers.py."""

import pytest

from helpers import tiny_config, tiny_model, word_tokenizer


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A folder with a tiny random model (wide initialisation) and the word tokenizer of helpers.word_tokenizer."""
    folder = tmp_path_factory.mktemp("tiny")
    tiny_model(initializer_range=0.2).save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder
