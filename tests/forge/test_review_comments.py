"""The review comments as rendered, character for character (golden files in tests/fixtures/comments/).

After an intended change of wording, regenerate the files with `MESHBOT_REGENERATE_GOLDEN=1 ./dev test
tests/forge/test_review_comments.py` and read the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.config import ServerConfig
from bot.descriptor.errors import InputError, SourcePosition
from bot.forge.review import _error_review, review, unavailable
from policies.loader import load_policies
from tests.forge.test_review import DeployedIn, deployed_example, dropping_a_column, open_merge_request, setup_forge

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "comments"
SHA = "0123456789abcdef0123456789abcdef01234567"


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MESHBOT_REGENERATE_GOLDEN"):
        path.write_text(text)
    assert path.is_file(), f"{path} is missing: run with MESHBOT_REGENERATE_GOLDEN=1 once"
    assert text == path.read_text(), f"{name} changed: compare with {path}"


def test_a_review_of_two_environments_against_what_is_deployed():
    _, repository = setup_forge()
    _, sha = open_merge_request(repository, dropping_a_column())
    config = ServerConfig(environment_statuses=True)
    deployed = DeployedIn(production=deployed_example("production"))
    result = review(repository, sha, config, load_policies(), None, deployed)
    assert_golden("review-dropped-column.md", result.comment.replace(sha[:8], "<sha>"))


def test_the_error_review_and_its_cut():
    errors = [InputError("malformed YAML: mapping values are not allowed here",
                         SourcePosition("catalog-info.yaml", 4, 9)),
              InputError("dependsOn 'x' is not a component of this data product",
                         SourcePosition("components/a/catalog-info.yaml", 12, 9))]
    comment = _error_review(SHA, ["development", "production"], "the data product could not be assembled", errors)
    assert_golden("review-error.md", comment.comment)


@pytest.mark.parametrize("reason", ["meshbot's server configuration or governance policies are invalid"])
def test_the_review_meshbot_could_not_run(reason):
    assert_golden("review-unavailable.md", unavailable(SHA, reason).comment)
