//! The console's guard, and its pages and actions against an in-memory store through the API.
use std::sync::Arc;

use axum::body::to_bytes;
use axum::http::HeaderValue;
use trials::clock::SystemClock;
use trials::config::Config;
use trials::store::Store;
use trials::App;

use super::*;
use axum::body::Body;

const HOST: &str = "127.0.0.1:3000";

fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.insert(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    h
}

fn peer(addr: &str) -> Option<SocketAddr> {
    Some(addr.parse().unwrap())
}

#[test]
fn only_loopback_peers_addressed_to_a_loopback_host_are_admitted() {
    let host = headers(&[(header::HOST, HOST)]);
    assert_eq!(admit(peer("127.0.0.1:5000"), &Method::GET, &host), Ok(()));
    assert_eq!(admit(peer("[::1]:5000"), &Method::GET, &host), Ok(()));
    assert_eq!(
        admit(peer("[::ffff:127.0.0.1]:5000"), &Method::GET, &host),
        Ok(())
    );
    for refused in ["10.0.0.7:5000", "192.168.1.2:80", "[2001:db8::1]:5000"] {
        assert!(
            admit(peer(refused), &Method::GET, &host).is_err(),
            "{refused}"
        );
    }
    // No peer known (a router served without connect info): refused, not assumed local.
    assert!(admit(None, &Method::GET, &host).is_err());
    // DNS rebinding: a loopback peer, but the page's own host name.
    for host in ["evil.example:3000", "evil.example", ""] {
        let h = headers(&[(header::HOST, host)]);
        assert!(
            admit(peer("127.0.0.1:5000"), &Method::GET, &h).is_err(),
            "{host}"
        );
    }
    for host in ["localhost:3000", "127.0.0.1", "[::1]:3000", "LOCALHOST"] {
        let h = headers(&[(header::HOST, host)]);
        assert_eq!(
            admit(peer("127.0.0.1:5000"), &Method::GET, &h),
            Ok(()),
            "{host}"
        );
    }
}

#[test]
fn a_form_post_must_come_from_the_consoles_origin() {
    let local = peer("127.0.0.1:5000");
    let post = |pairs: &[(header::HeaderName, &str)]| {
        let mut all = vec![(header::HOST, HOST)];
        all.extend_from_slice(pairs);
        admit(local, &Method::POST, &headers(&all))
    };
    assert_eq!(post(&[(header::ORIGIN, "http://127.0.0.1:3000")]), Ok(()));
    assert_eq!(
        post(&[(header::REFERER, "http://127.0.0.1:3000/console/trials/x")]),
        Ok(())
    );
    assert!(post(&[]).is_err());
    assert!(post(&[(header::ORIGIN, "http://evil.example")]).is_err());
    assert!(post(&[(header::ORIGIN, "null")]).is_err());
    assert!(post(&[(header::ORIGIN, "http://127.0.0.1:3001")]).is_err());
    // Origin wins over a matching Referer.
    assert!(post(&[
        (header::ORIGIN, "http://evil.example"),
        (header::REFERER, "http://127.0.0.1:3000/console")
    ])
    .is_err());
    assert!(post(&[(
        header::REFERER,
        "http://127.0.0.1:3000.evil.example/console"
    )])
    .is_err());
}

async fn console() -> Console {
    let endpoint = crate::embedded::start_dynoxide(None).await.unwrap();
    let store = Store::new(trials::aws::local_dynamodb(&endpoint), "trials-local", 4);
    store.ensure_table().await.unwrap();
    let config = Config::from_lookup(|_| None).unwrap();
    let app = App::new(config, store, Arc::new(SystemClock));
    Console {
        api: Api::new(app),
        jobs: JobLog::default(),
    }
}

/// A request as the server hands it over: from `from`, to [`HOST`].
fn request(method: &str, uri: &str, from: &str, extra: &[(&str, &str)], body: &str) -> Request {
    let mut builder = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", HOST);
    for (k, v) in extra {
        builder = builder.header(*k, *v);
    }
    let mut req = builder.body(Body::from(body.to_owned())).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo::<SocketAddr>(from.parse().unwrap()));
    req
}

async fn send(c: &Console, req: Request) -> (StatusCode, String, Option<String>) {
    let res = entry(State(c.clone()), req).await;
    let status = res.status();
    let location = res
        .headers()
        .get(header::LOCATION)
        .map(|l| l.to_str().unwrap().to_owned());
    let body = to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap(), location)
}

async fn start(c: &Console, org: &str, notes: &str) -> Value {
    let org = OrgId::parse(org).unwrap();
    let answer = c
        .api
        .send(Call {
            method: "POST",
            path: "/v1/trials/start",
            org: &org,
            project: DEV_PROJECT,
            body: Some(json!({"plan": "growth", "notes": notes})),
            idempotency_key: Some("console-test-start"),
        })
        .await
        .unwrap();
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body
}

#[tokio::test]
async fn a_non_loopback_client_gets_403_and_no_page() {
    let c = console().await;
    for path in ["/console", "/console/trials", "/console/jobs"] {
        let (status, body, _) = send(&c, request("GET", path, "203.0.113.9:4444", &[], "")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains("loopback clients only"), "{body}");
        let (status, _, _) = send(&c, request("GET", path, "127.0.0.1:4444", &[], "")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, _, _) = send(&c, request("GET", "/console/nope", "127.0.0.1:1", &[], "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_operator_extends_a_trial_from_its_page_through_the_api() {
    let c = console().await;
    let started = start(&c, "org_console", "<script>alert(1)</script>").await;
    let id = started["id"].as_str().unwrap().to_owned();
    let before = started["expires_at"].as_str().unwrap().to_owned();

    let (status, list, _) = send(
        &c,
        request("GET", "/console/trials?org=org_con", "127.0.0.1:1", &[], ""),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list.contains(&format!(r#"href="/console/trials/{id}""#)),
        "{list}"
    );
    let (_, none, _) = send(
        &c,
        request(
            "GET",
            "/console/trials?state=EXPIRED",
            "127.0.0.1:1",
            &[],
            "",
        ),
    )
    .await;
    assert!(!none.contains(&id), "{none}");

    let (status, trial_page, _) = send(
        &c,
        request(
            "GET",
            &format!("/console/trials/{id}"),
            "127.0.0.1:1",
            &[],
            "",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The admin view shows the notes, escaped; the timeline has the start.
    assert!(!trial_page.contains("<script>alert"), "{trial_page}");
    assert!(
        trial_page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{trial_page}"
    );
    assert!(trial_page.contains(r#"id="extend""#));
    assert!(trial_page.contains("trial.started"), "{trial_page}");

    let form = "token=abc123&days=3&reason=support";
    let path = format!("/console/trials/{id}/extend");
    // No Origin, no Referer: refused, nothing changes.
    let (status, _, _) = send(&c, request("POST", &path, "127.0.0.1:1", &[], form)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let origin = [
        ("origin", "http://127.0.0.1:3000"),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let (status, _, location) =
        send(&c, request("POST", &path, "127.0.0.1:1", &origin, form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = location.unwrap();
    assert!(
        location.starts_with(&format!("/console/trials/{id}?msg=extend")),
        "{location}"
    );

    let tid = TrialId::parse(&id).unwrap();
    let stored = c.api.app().store.get_trial(&tid).await.unwrap().unwrap();
    assert_eq!(rfc3339(stored.expires_at - 3 * 86_400), before);
    // The same form again is the same request: replayed, not a second extension.
    send(&c, request("POST", &path, "127.0.0.1:1", &origin, form)).await;
    let again = c.api.app().store.get_trial(&tid).await.unwrap().unwrap();
    assert_eq!(again.expires_at, stored.expires_at);

    // The API's refusal comes back as the page's error notice.
    let bad = "token=abc124&days=0";
    let (_, _, location) = send(&c, request("POST", &path, "127.0.0.1:1", &origin, bad)).await;
    let location = location.unwrap();
    assert!(location.contains("error=extend"), "{location}");
    let (_, shown, _) = send(&c, request("GET", &location, "127.0.0.1:1", &[], "")).await;
    assert!(
        shown.contains(r#"<p class="error" id="error">extend: 422"#),
        "{shown}"
    );
}

#[tokio::test]
async fn allowing_an_org_writes_its_allowance() {
    let c = console().await;
    let allow = |form: &'static str| {
        let origin = [("origin", "http://127.0.0.1:3000")];
        request("POST", "/console/allow", "127.0.0.1:1", &origin, form)
    };
    let (status, _, location) = send(&c, allow("org=org_refused")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.unwrap().contains("msg=org"));
    let org = OrgId::parse("org_refused").unwrap();
    assert!(c.api.app().store.org_standing(&org).await.unwrap().allowed);
    let (_, _, location) = send(&c, allow("org=%3Cbad%3E")).await;
    assert!(location.unwrap().contains("error=allow"));
}
