//! The route table ([`trials::api::ROUTES`]) against the two other lists of routes: the HTTP API
//! events of `template.yaml` (what AWS routes, and to which function) and the `paths` of
//! `openapi.yaml` (what clients are promised). Each (method, path) is in all three or the test
//! names it; and each function's binary serves the function its template resource builds.
//!
//! The YAML is read line by line (the two files' own indentation), not parsed: the workspace has
//! no YAML parser and these checks need only the few lines they name.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use trials::api::{FUNCTIONS, ROUTES};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A key's value on a line such as `      Method: POST` (quotes dropped), if the line is that key.
fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.trim().strip_prefix(key)?.strip_prefix(':')?;
    Some(rest.trim().trim_matches('"'))
}

/// One HTTP API event of `template.yaml`: the function's binary, the method and the path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    binary: String,
    method: String,
    path: String,
}

/// Every `Type: HttpApi` event under `Resources`, with its resource's `Binary`. A resource is
/// a line indented by two spaces under `Resources:`; within it, an event starts at
/// `Type: HttpApi` and takes the `Method` and `Path` that follow.
fn template_events(template: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let mut in_resources = false;
    let mut binary: Option<String> = None;
    let mut pending: Option<(Option<String>, Option<String>)> = None;
    let mut open: Vec<(Option<String>, Option<String>)> = Vec::new();
    let mut flush = |binary: &Option<String>, open: &mut Vec<(Option<String>, Option<String>)>| {
        for (method, path) in open.drain(..) {
            let binary = binary
                .clone()
                .expect("an HTTP API event in a resource with a Binary");
            events.push(Event {
                binary,
                method: method.expect("an HttpApi event has a Method"),
                path: path.expect("an HttpApi event has a Path"),
            });
        }
    };
    for line in template.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let top_level = !line.starts_with(' ');
        if top_level {
            open.extend(pending.take());
            flush(&binary, &mut open);
            binary = None;
            in_resources = line.starts_with("Resources:");
            continue;
        }
        if !in_resources {
            continue;
        }
        let resource = line.starts_with("  ") && !line.starts_with("   ");
        if resource {
            open.extend(pending.take());
            flush(&binary, &mut open);
            binary = None;
            continue;
        }
        if let Some(b) = value(line, "Binary") {
            binary = Some(b.to_owned());
        } else if let Some(kind) = value(line, "Type") {
            open.extend(pending.take());
            pending = (kind == "HttpApi").then_some((None, None));
        } else if let (Some(method), Some(event)) = (value(line, "Method"), pending.as_mut()) {
            event.0 = Some(method.to_owned());
        } else if let (Some(path), Some(event)) = (value(line, "Path"), pending.as_mut()) {
            event.1 = Some(path.to_owned());
        }
    }
    open.extend(pending.take());
    flush(&binary, &mut open);
    events.sort();
    events
}

/// Every (METHOD, path) under `openapi.yaml`'s `paths`: paths indented by two spaces, their
/// operations by four.
fn openapi_operations(openapi: &str) -> BTreeSet<(String, String)> {
    const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];
    let mut operations = BTreeSet::new();
    let mut in_paths = false;
    let mut path: Option<&str> = None;
    for line in openapi.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') {
            in_paths = line.starts_with("paths:");
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) {
            path = Some(p.trim_end().trim_end_matches(':').trim_matches('"'));
        } else if let Some(op) = line.strip_prefix("    ").filter(|l| !l.starts_with(' ')) {
            let method = op.trim_end().trim_end_matches(':');
            if METHODS.contains(&method) {
                let path = path.expect("an operation under a path");
                operations.insert((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    operations
}

fn table() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|row| (row.method.to_owned(), row.path.to_owned()))
        .collect()
}

#[test]
fn the_table_is_the_templates_http_api_and_each_route_goes_to_its_function() {
    let events = template_events(&read("template.yaml"));
    let routed: BTreeSet<(String, String)> = events
        .iter()
        .map(|e| (e.method.clone(), e.path.clone()))
        .collect();
    assert_eq!(routed.len(), events.len(), "a route twice in the template");
    assert_eq!(
        table(),
        routed,
        "the route table and template.yaml's HttpApi events differ"
    );
    for event in &events {
        let row = ROUTES
            .iter()
            .find(|row| row.method == event.method && row.path == event.path)
            .expect("every event has a row (checked above)");
        assert_eq!(
            row.function, event.binary,
            "{} is served by `{}` in the table but routed to `{}` by the template",
            row.name, row.function, event.binary
        );
    }
}

#[test]
fn each_http_function_serves_its_own_group() {
    // Every function in the table has a group (the list generates both), and its binary passes
    // that group, not the whole table, to `serve`: it links only its own handlers.
    let functions: BTreeSet<&str> = ROUTES.iter().map(|row| row.function).collect();
    let grouped: BTreeSet<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
    assert_eq!(functions, grouped);
    for function in FUNCTIONS {
        let main = read(&format!("functions/{}/src/main.rs", function.name));
        assert!(
            main.contains(&format!(
                "trials::lambda::serve(trials::api::routes::{})",
                function.group
            )),
            "functions/{}/src/main.rs does not serve the group `{}`",
            function.name,
            function.group
        );
        assert!(
            !main.contains("ROUTES"),
            "{} names the whole table",
            function.name
        );
    }
}

#[test]
fn the_table_is_openapis_paths() {
    let documented = openapi_operations(&read("openapi.yaml"));
    let table = table();
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&table).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "in the table, not in openapi.yaml: {undocumented:?}; in openapi.yaml, not in the table: \
         {unserved:?}"
    );
}

#[test]
fn the_readers_see_what_they_are_given() {
    // The readers themselves, on small documents: a Schedule event is no route, an event's
    // lines may come in any order, and a path's non-operation keys are no method.
    let template = "\
Parameters:
  Method: GET
Resources:
  AFunction:
    Metadata:
      BuildProperties:
        Binary: a
    Properties:
      Events:
        One:
          Type: HttpApi
          Properties:
            Path: /v1/one
            Method: POST
        Tick:
          Type: Schedule
          Properties:
            Schedule: rate(5 minutes)
  BFunction:
    Metadata:
      BuildProperties:
        Binary: b
    Properties:
      Events:
        Two:
          Type: HttpApi
          Properties:
            # a comment
            Method: GET
            Path: /v1/two/{id}
Outputs:
  Url:
    Value: x
";
    let event = |binary: &str, method: &str, path: &str| Event {
        binary: binary.into(),
        method: method.into(),
        path: path.into(),
    };
    assert_eq!(
        template_events(template),
        [
            event("a", "POST", "/v1/one"),
            event("b", "GET", "/v1/two/{id}")
        ]
    );
    let openapi = "\
openapi: 3.1.0
paths:
  /v1/one:
    parameters: []
    post:
      summary: x
  \"/v1/two/{id}\":
    get:
      responses: {}
    patch:
      responses: {}
components:
  schemas:
    get:
      type: object
";
    let operations: Vec<_> = openapi_operations(openapi).into_iter().collect();
    assert_eq!(
        operations,
        [
            ("GET".to_owned(), "/v1/two/{id}".to_owned()),
            ("PATCH".to_owned(), "/v1/two/{id}".to_owned()),
            ("POST".to_owned(), "/v1/one".to_owned()),
        ]
    );
}
