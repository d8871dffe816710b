//! `/openapi.json` documents exactly the routes `seb serve` mounts: the broker's
//! ([`seb_broker::http::routes`], from which its router is built), admission's
//! ([`seb_admission::http::ROUTES`], checked here against the live router) and the Kubernetes
//! webhook; and the schemas refuse what the server refuses. Errors of the ledger routes are
//! problem+json. (The schemathesis run of scripts/test.sh checks responses against it.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{PERMIT_PROPOSALS, Server, admission_config, serve};

fn openapi() -> Value {
    serde_json::from_str(seb_broker::OPENAPI).unwrap()
}

/// (method, path) of every operation the document describes.
fn documented() -> BTreeSet<(String, String)> {
    let doc = openapi();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.clone(), path.clone()));
        }
    }
    out
}

/// (method, path) of every route the routers of `seb serve` mount.
fn mounted() -> BTreeSet<(String, String)> {
    let mut out: BTreeSet<(String, String)> = seb_broker::http::routes()
        .iter()
        .map(|r| (r.verb.as_str().to_owned(), r.path.to_owned()))
        .collect();
    for (m, p) in seb_admission::http::ROUTES {
        out.insert((m.to_owned(), p.to_owned()));
    }
    out.insert(("post".into(), seb_kube::deploy::ADMISSION_PATH.to_owned()));
    out
}

#[test]
fn openapi_documents_exactly_the_mounted_routes() {
    let (doc, served) = (documented(), mounted());
    let undocumented: Vec<_> = served.difference(&doc).collect();
    let unserved: Vec<_> = doc.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not documented: {undocumented:?}; documented but not served: {unserved:?}"
    );
}

/// The schemas say what the handlers refuse: integer query parameters (no negatives), a proof
/// of a tree of at least one entry, integer `t_exec_ms`, and no unknown fields.
#[test]
fn openapi_schemas_refuse_what_the_server_refuses() {
    let doc = openapi();
    let param = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no parameter {name}"))["schema"]
            .clone()
    };
    for (path, name, min) in [
        ("/v1/ledger/entries", "start", 0),
        ("/v1/ledger/entries", "end", 0),
        ("/v1/ledger/proofs/inclusion", "index", 0),
        ("/v1/ledger/proofs/inclusion", "size", 1),
        ("/v1/ledger/proofs/consistency", "old", 0),
        ("/v1/ledger/proofs/consistency", "new", 0),
    ] {
        let s = param(path, name);
        assert_eq!(s["type"], "integer", "{path} {name}");
        assert_eq!(s["minimum"], min, "{path} {name}");
    }
    let entries = &doc["paths"]["/v1/ledger/entries"]["get"];
    assert!(entries["summary"].as_str().unwrap().contains("at most 1000"));
    assert_eq!(
        entries["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["entries"]
            ["maxItems"],
        1000
    );
    let req = &doc["components"]["schemas"]["Presentation"]["properties"]["request"];
    assert_eq!(req["properties"]["t_exec_ms"]["type"], "integer");
    assert_eq!(req["additionalProperties"], false);
    assert_eq!(doc["components"]["schemas"]["Presentation"]["additionalProperties"], false);
}

fn start(dir: &std::path::Path) -> Server {
    let cfg = format!(
        "[broker]\nlisten = \"127.0.0.1:0\"\nkey_file = \"broker.seed\"\nstore = \"sqlite:seb.db\"\ncheckpoint_interval_s = 0\n\n[targets.test]\nstate_file = \"target.json\"\n{}",
        admission_config(dir, PERMIT_PROPOSALS, "")
    );
    std::fs::write(dir.join("seb.toml"), cfg).unwrap();
    serve(dir, None)
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Against the live `seb serve` (broker and admission mounted): every documented operation is
/// routed (no 405, and no 404 but a handler's problem+json one), and every other method on a
/// documented path is 405. The webhook needs a Kubernetes target; its route is mounted by
/// `platforms::webhook_routes` at the same constant (crates/seb-kube tests exercise it live).
#[test]
fn the_live_server_routes_every_documented_operation_and_no_other_method() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path());
    let http = reqwest::blocking::Client::new();
    let mut checked = 0;
    for (method, path) in documented() {
        if path == seb_kube::deploy::ADMISSION_PATH {
            continue;
        }
        let url =
            format!("{}{}", b.url, path.replace("{id}", "00000000-0000-0000-0000-000000000000"));
        for m in METHODS {
            let resp = http
                .request(m.parse().unwrap(), &url)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .unwrap();
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            if m.eq_ignore_ascii_case(&method) {
                assert_ne!(status, 405, "{m} {path}");
                assert!(
                    status != 404 || ctype == "application/problem+json",
                    "{m} {path}: 404 not from a handler"
                );
                checked += 1;
            } else if !documented().contains(&(m.to_ascii_lowercase(), path.clone())) {
                assert_eq!(status, 405, "{m} {path} is not documented but answers {status}");
            }
        }
    }
    assert_eq!(checked, documented().len() - 1);
}

/// Bad or missing query parameters on the ledger routes are problem+json with
/// `failed_check: parse`, like every other broker error (they were axum's `text/plain`).
#[test]
fn ledger_query_errors_are_problem_json() {
    let dir = tempfile::tempdir().unwrap();
    let b = start(dir.path());
    let http = reqwest::blocking::Client::new();
    for q in [
        "/v1/ledger/entries?start=0",
        "/v1/ledger/entries?start=-1&end=2",
        "/v1/ledger/entries?start=0&end=1.5",
        "/v1/ledger/entries?start=5&end=1",
        "/v1/ledger/entries?start=0&end=1001",
        "/v1/ledger/proofs/inclusion?index=0",
        "/v1/ledger/proofs/inclusion?index=0&size=0",
        "/v1/ledger/proofs/inclusion?index=x&size=1",
        "/v1/ledger/proofs/consistency?old=1",
        "/v1/ledger/proofs/consistency?old=2&new=1",
    ] {
        let resp = http.get(format!("{}{q}", b.url)).send().unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{q}");
        assert_eq!(
            resp.headers().get("content-type").unwrap().to_str().unwrap(),
            "application/problem+json",
            "{q}"
        );
        let v: Value = resp.json().unwrap();
        assert_eq!(v["failed_check"], "parse", "{q}: {v}");
        assert_eq!(v["status"], 400, "{q}: {v}");
        assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{q}: {v}");
    }
}
