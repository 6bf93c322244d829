from textkit import slugify


def test_basic():
    assert slugify("Hello, World!") == "hello-world"


def test_unicode_is_transliterated():
    assert slugify("Crème brûlée") == "creme-brulee"
