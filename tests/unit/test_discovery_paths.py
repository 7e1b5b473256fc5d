"""Path templates: identifiers by shape and by cardinality, names kept."""

from __future__ import annotations

import uuid

import pytest

from dijk.discovery.paths import (
    PathTree,
    SegmentKind,
    classify,
    fold_templates,
    parameter_names,
)


@pytest.mark.parametrize(
    ("segment", "kind"),
    [
        ("17", SegmentKind.SHORT_NUMBER),
        ("123456", SegmentKind.INTEGER),
        ("6b1c2e0a-1111-4222-8333-444455556666", SegmentKind.UUID),
        ("da39a3ee5e6b4b0d3255bfef95601890afd80709", SegmentKind.HEX),
        ("jan@example.nl", SegmentKind.EMAIL),
        ("jan%40example.nl", SegmentKind.EMAIL),
        ("2026-12-07", SegmentKind.DATE),
        ("2026-12-07T10:00:00Z", SegmentKind.DATE_TIME),
        ("aZ3kP9qR2sT8uV1wX4yB", SegmentKind.TOKEN),
        ("me", SegmentKind.STATIC),
        ("reset-password", SegmentKind.STATIC),
        ("phone-number-orders", SegmentKind.STATIC),
        ("accountHolders", SegmentKind.STATIC),
        ("account_holder_name", SegmentKind.STATIC),
        ("v1", SegmentKind.STATIC),
        ("v2beta", SegmentKind.STATIC),
        ("oauth2", SegmentKind.STATIC),
        ("my-first-blog-post", SegmentKind.AMBIGUOUS),
        ("AB12CD", SegmentKind.AMBIGUOUS),
    ],
)
def test_segment_shapes(segment: str, kind: str) -> None:
    assert classify(segment) == kind


def test_numeric_ids_share_one_template_while_names_stay() -> None:
    tree = PathTree()
    assert tree.template("/users/17") == "/users/{}"
    assert tree.template("/users/18") == "/users/{}"
    assert tree.template("/users/me") == "/users/me"
    for number in range(1000, 1100):
        tree.template(f"/users/{number}")
    assert tree.template("/users/me") == "/users/me"


def test_every_identifier_shape_is_a_parameter_on_first_sight() -> None:
    tree = PathTree()
    assert tree.template(f"/orders/{uuid.uuid4()}") == "/orders/{}"
    assert tree.template("/people/jan@example.nl/cards") == "/people/{}/cards"
    assert tree.template("/reports/2026-12-07") == "/reports/{}"
    assert tree.template("/blobs/d41d8cd98f00b204e9800998ecf8427e") == "/blobs/{}"


def test_version_segments_stay_literal() -> None:
    tree = PathTree()
    assert tree.template("/api/v1/accounts/7") == "/api/v1/accounts/{}"
    assert tree.template("/api/v2/accounts/7") == "/api/v2/accounts/{}"


def test_short_number_mid_path_is_a_version_until_a_second_value_appears() -> None:
    tree = PathTree()
    assert tree.template("/api/2/users") == "/api/2/users"
    assert tree.template("/api/2/users") == "/api/2/users"
    tree2 = PathTree()
    assert tree2.template("/accounts/7/transactions") == "/accounts/7/transactions"
    assert tree2.template("/accounts/8/transactions") == "/accounts/{}/transactions"
    # what was learnt before is re-read through the tree
    assert tree2.resolve("/accounts/7/transactions") == "/accounts/{}/transactions"


def test_short_number_at_the_end_is_an_identifier() -> None:
    tree = PathTree()
    assert tree.template("/api/v0/accounts/7") == "/api/v0/accounts/{}"


def test_slugs_become_a_parameter_by_cardinality_names_do_not() -> None:
    tree = PathTree(ambiguous_limit=4)
    slugs = [f"how-to-{word}-things" for word in ("bake", "fix", "sell", "plan", "move", "paint")]
    learnt = [tree.template(f"/posts/{slug}") for slug in slugs]
    assert learnt[0] == "/posts/how-to-bake-things"  # one slug alone could be a name
    assert learnt[-1] == "/posts/{}"
    assert tree.resolve("/posts/how-to-bake-things") == "/posts/{}"
    assert tree.template("/posts/latest") == "/posts/latest"


def test_identifier_with_extension_keeps_the_extension() -> None:
    tree = PathTree()
    assert tree.template("/invoices/12345.pdf") == "/invoices/{}.pdf"


def test_ids_inside_mixed_literal_paths() -> None:
    tree = PathTree()
    path = "/api/v1/customers/123456/accounts/6b1c2e0a-1111-4222-8333-444455556666/statements"
    assert tree.template(path) == "/api/v1/customers/{}/accounts/{}/statements"


def test_tree_growth_is_bounded() -> None:
    tree = PathTree(max_nodes=50)
    for index in range(500):
        tree.template(f"/static/name{chr(97 + index % 26)}x/{'q' * (index % 7 + 1)}")
    assert tree.nodes <= 50


def test_parameter_names_are_unique_and_follow_the_literal_before() -> None:
    named, names = parameter_names("/users/{}/posts/{}/files/{}.json")
    assert named == "/users/{id}/posts/{postId}/files/{fileId}.json"
    assert names == ["id", "postId", "fileId"]
    named, names = parameter_names("/a/{}/{}")
    assert len(set(names)) == 2


def test_folding_merges_literals_learnt_elsewhere_but_keeps_names() -> None:
    folded = fold_templates(
        ["/posts/{}", "/posts/a-b-c-d", "/posts/42/x", "/users/me", "/users/{}"]
    )
    assert folded["/posts/a-b-c-d"] == "/posts/{}"
    assert folded["/posts/42/x"] == "/posts/{}/x"
    assert folded["/users/me"] == "/users/me"


def test_decimal_numbers_and_custom_methods_are_identifiers() -> None:
    tree = PathTree()
    assert tree.template("/tiles/3327.44/6382.92.png") == "/tiles/{}/{}.png"
    assert tree.template("/v1/a1b2c3d4:cancel") == "/v1/{}:cancel"
    assert tree.template("/v1/projects:list") == "/v1/projects:list"


def test_names_with_a_file_extension_stay() -> None:
    tree = PathTree()
    for name in ("add-domain.json", "check-domain.json", "delete-route.json", "list.json"):
        assert tree.template(f"/inbound/{name}") == f"/inbound/{name}"
    assert tree.template("/exports/12345.json") == "/exports/{}.json"


def test_dates_mid_path_are_versions_until_a_second_one() -> None:
    tree = PathTree()
    assert tree.template("/2021-01-01/domain/list") == "/2021-01-01/domain/list"
    assert tree.template("/reports/2026-12-07") == "/reports/{}"


def test_words_that_read_like_none_are_ambiguous_names_are_not() -> None:
    for name in ("accounts", "subscriptions", "transactions", "notifications", "webhooks"):
        assert classify(name) == SegmentKind.STATIC
    for noise in ("hmktfybdkwv0", "lutopxrmm"):
        assert classify(noise) == SegmentKind.AMBIGUOUS


def test_an_ambiguous_segment_beside_a_parameter_is_one_more_value() -> None:
    tree = PathTree()
    tree.template("/orders/123456")
    assert tree.template("/orders/AB12CD") == "/orders/{}"
    assert tree.template("/orders/latest") == "/orders/latest"


def test_a_name_seen_once_beside_a_busy_parameter_is_read_as_a_value_until_seen_again() -> None:
    tree = PathTree()
    for number in range(1000, 1010):
        tree.template(f"/users/{number}")
    tree.template("/users/jansen")
    assert tree.resolve("/users/jansen") == "/users/{}"
    tree.template("/users/jansen")
    assert tree.resolve("/users/jansen") == "/users/jansen"
    quiet = PathTree()
    quiet.template("/users/17")
    quiet.template("/users/me")
    assert quiet.resolve("/users/me") == "/users/me"
