"""The learner: schema inference, sampling, memory bounds, eviction, and no values kept."""

from __future__ import annotations

import orjson
from openapi_spec_validator import validate

from dijk.discovery import shapes
from dijk.discovery.importers import from_access_log, from_audit_log, from_har
from dijk.discovery.inventory import Exchange, Learner, LearnerLimits, merge_endpoint
from dijk.discovery.openapi import build_document

NOW = 1_796_000_000_000_000


def _schema(*values: object) -> dict[str, object]:
    shape = None
    for value in values:
        shape = shapes.learn(shape, value, shapes.ShapeBudget(1000))
    assert shape is not None
    return shapes.to_schema(shape)


def test_types_formats_required_and_nullable_are_inferred() -> None:
    schema = _schema(
        {"id": 1, "email": "a@b.nl", "born": "1990-01-02", "score": 1.5, "note": None},
        {"id": 2, "email": "c@d.nl", "born": "1991-02-03", "score": 2, "note": "x"},
        {"id": 3, "email": "e@f.nl", "born": "1992-03-04", "score": 3},
    )
    properties = schema["properties"]
    assert isinstance(properties, dict)
    assert properties["id"] == {"type": "integer"}
    assert properties["email"] == {"type": "string", "format": "email"}
    assert properties["born"] == {"type": "string", "format": "date"}
    assert properties["score"] == {"type": "number"}
    assert properties["note"] == {"type": ["string", "null"]}
    assert schema["required"] == ["born", "email", "id", "score"]


def test_array_items_get_one_schema() -> None:
    schema = _schema({"tags": [{"k": "a1"}, {"k": "b2", "v": 1}]})
    properties = schema["properties"]
    assert isinstance(properties, dict)
    assert properties["tags"]["type"] == "array"
    assert properties["tags"]["items"]["required"] == ["k"]


def test_enum_only_where_few_codes_recur() -> None:
    recurring = [{"status": ["active", "closed", "frozen"][index % 3]} for index in range(30)]
    assert _schema(*recurring)["properties"]["status"]["enum"] == ["active", "closed", "frozen"]
    few = [{"status": "active"}, {"status": "closed"}]
    assert "enum" not in _schema(*few)["properties"]["status"]
    many = [{"status": f"code{index}"} for index in range(30)]
    assert "enum" not in _schema(*many)["properties"]["status"]


def test_values_of_personal_or_secret_fields_never_become_enums() -> None:
    samples = [
        {"username": ["demo", "admin"][i % 2], "city": ["delft", "gouda"][i % 2]} for i in range(40)
    ]
    properties = _schema(*samples)["properties"]
    assert "enum" not in properties["username"]
    assert "enum" not in properties["city"]
    mixed_case = [{"kind": ["Jansen", "Bakker"][i % 2]} for i in range(40)]
    assert "enum" not in _schema(*mixed_case)["properties"]["kind"]


def _exchange(path: str, body: object, *, method: str = "GET", status: int = 200) -> Exchange:
    return Exchange(
        method=method,
        path=path,
        time_us=NOW,
        status=status,
        response_type="application/json",
        response_body=orjson.dumps(body),
    )


def test_no_value_from_traffic_is_stored() -> None:
    learner = Learner()
    secret_values = ["jan.jansen@example.nl", "NL91ABNA0417164300", "s3cr3t-Passw0rd", "Jansen"]
    for index in range(30):
        body = {"email": secret_values[0], "iban": secret_values[1], "password": secret_values[2]}
        body["name"] = secret_values[3]
        learner.observe(_exchange(f"/users/{index + 100}?token=abc{index}xyz", body))
    stored = orjson.dumps(learner.snapshot()).decode()
    document = orjson.dumps(build_document(learner.snapshot())).decode()
    for value in [*secret_values, "abc1xyz"]:
        assert value not in stored
        assert value not in document


def test_sampling_learns_details_of_the_first_and_then_one_in_n() -> None:
    learner = Learner(LearnerLimits(sample_first=5, sample_every=10))
    for index in range(105):
        learner.observe(_exchange(f"/a/{index + 100}", {"n": index}))
    (endpoint,) = learner.snapshot()
    assert endpoint["count"] == 105
    assert endpoint["samples"] == 5 + 10  # 5 first, then seen 10, 20, ... 100
    assert endpoint["status"] == {"200": 105}


def test_endpoint_memory_is_capped_per_endpoint() -> None:
    limits = LearnerLimits(max_endpoint_bytes=16 * 1024, sample_every=1)
    learner = Learner(limits)
    for index in range(200):
        learner.observe(_exchange("/wide", {f"field{index}_{j}": j for j in range(20)}))
    (endpoint,) = learner.endpoints()
    assert shapes.shape_size(endpoint["responses"]["200"]) * 520 <= 16 * 1024
    assert endpoint["responses"]["200"].get("x", 0) > 0  # left out, and said so
    assert learner.total_bytes <= 16 * 1024 + 4096


def test_least_recently_seen_endpoints_are_evicted_and_counted() -> None:
    learner = Learner(LearnerLimits(max_endpoints=10))
    for index in range(25):
        learner.observe(_exchange(f"/resource{chr(97 + index)}/list", {}))
    learner.observe(_exchange("/resourcea/list", {}))  # evicted long ago: comes back
    assert len(learner) == 10
    assert learner.evicted == 16
    templates = {endpoint["template"] for endpoint in learner.endpoints()}
    assert "/resourcey/list" in templates
    assert "/resourcea/list" in templates
    assert "/resourcep/list" not in templates


def test_total_memory_bound_is_enforced() -> None:
    limits = LearnerLimits(max_total_bytes=200 * 1024, sample_every=1)
    learner = Learner(limits)
    for index in range(400):
        learner.observe(_exchange(f"/r{chr(97 + index % 26)}{chr(97 + index // 26)}x", {"a": 1}))
        assert learner.total_bytes <= 200 * 1024
    assert learner.evicted > 0


def test_merging_endpoints_adds_counts_and_widens_times() -> None:
    one = Learner()
    two = Learner()
    one.observe(_exchange("/x/100", {"a": 1}))
    two.observe(Exchange("GET", "/x/200", NOW + 10, 404, response_type="application/json"))
    (left,) = one.snapshot()
    (right,) = two.snapshot()
    merged = merge_endpoint(left, right)
    assert merged["count"] == 2
    assert merged["status"] == {"200": 1, "404": 1}
    assert merged["last_us"] == NOW + 10


def test_document_is_valid_openapi_31_with_one_path_for_many_ids() -> None:
    learner = Learner()
    for index in range(1, 40):
        learner.observe(_exchange(f"/api/v1/accounts/{index}", {"id": index, "email": "a@b.nl"}))
    learner.observe(
        Exchange(
            "POST",
            "/api/v1/accounts",
            NOW,
            201,
            request_type="application/json",
            request_body=b'{"name": "x", "email": "a@b.nl"}',
            auth="api_key",
        )
    )
    document = build_document(learner.snapshot())
    validate(document)
    assert list(document["paths"]) == ["/api/v1/accounts", "/api/v1/accounts/{id}"]
    post = document["paths"]["/api/v1/accounts"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"name", "email"}
    get = document["paths"]["/api/v1/accounts/{id}"]["get"]
    assert get["x-dijk-count"] == 39
    assert get["parameters"][0]["schema"] == {"type": "integer"}
    assert {"x-dijk-first-seen", "x-dijk-last-seen"} <= set(get)


def test_har_import() -> None:
    har = {
        "log": {
            "entries": [
                {
                    "startedDateTime": "2026-12-01T10:00:00Z",
                    "request": {
                        "method": "GET",
                        "url": f"http://api.test/orders/{number}?expand=items",
                        "headers": [{"name": "Authorization", "value": "Bearer abc"}],
                    },
                    "response": {
                        "status": 200,
                        "headers": [],
                        "content": {"mimeType": "application/json", "text": '{"id": 1}'},
                    },
                }
                for number in (1001, 1002)
            ]
        }
    }
    learner = Learner()
    for exchange in from_har(har):
        learner.observe(exchange)
    (endpoint,) = learner.snapshot()
    assert endpoint["template"] == "/orders/{}"
    assert endpoint["auth"] == {"bearer": 2}
    assert set(endpoint["query"]) == {"expand"}


def test_access_log_import() -> None:
    lines = [
        '127.0.0.1 - - [07/Dec/2026:10:00:00 +0000] "GET /api/items/1234?page=2 HTTP/1.1"'
        ' 200 12 "-" "curl"',
        '127.0.0.1 - - [07/Dec/2026:10:00:01 +0000] "DELETE /api/items/99999 HTTP/1.1" 204 0',
    ]
    templates = {(item.method, item.path, item.status) for item in from_access_log(lines)}
    assert ("GET", "/api/items/1234", 200) in templates
    learner = Learner()
    for exchange in from_access_log(lines):
        learner.observe(exchange)
    assert {e["template"] for e in learner.snapshot()} == {"/api/items/{}"}


def test_audit_log_import_keeps_route_templates() -> None:
    records = [
        {
            "time": "2026-12-07T10:00:00.000000Z",
            "method": "GET",
            "route": "account",
            "path_template": "/api/v1/accounts/{id}",
            "status": 200,
            "auth_method": "api_key",
            "pii_categories": ["email"],
        },
        {
            "time": "2026-12-07T10:00:00Z",
            "method": "POST",
            "route": "admin:reload",
            "path_template": "/admin/api/v1/reload",
            "status": 200,
        },
    ]
    learner = Learner()
    for exchange in from_audit_log(records):
        learner.observe(exchange)
    (endpoint,) = learner.snapshot()
    assert endpoint["template"] == "/api/v1/accounts/{}"
    assert endpoint["pii"] == {"email": 1}


def test_search_terms_in_query_parameters_never_become_enums() -> None:
    learner = Learner(LearnerLimits(sample_every=1))
    for index in range(40):
        term = ["jansen", "bakker"][index % 2]
        order = ["asc", "desc"][index % 2]
        learner.observe(Exchange("GET", "/search", NOW, 200, query=f"q={term}&sort={order}"))
    document = orjson.dumps(build_document(learner.snapshot())).decode()
    assert "jansen" not in document
    assert '"enum":["asc","desc"]' in document
