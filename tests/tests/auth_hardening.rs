//! What a hostile client could do to signup, login and the REST surface, against the real
//! server: costly signups (limits per address and email, bounded hashing with 503 `busy`),
//! account enumeration and lock-out (dummy hashes, limits per address, no owner lock-out),
//! weak passwords, error bodies of unknown routes, template thumbnails and public
//! templates, usernames differing in case, names with control and direction characters.
//! Addresses other than 127.0.0.1 are simulated through `X-Forwarded-For` on a server that
//! trusts one proxy.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use canvas_tests::*;
use serde_json::{Value, json};

/// A strong password for every signup here.
const PASSWORD: &str = "correct horse battery";

/// An answer: status, `Retry-After` (if any), `Allow` (if any) and the JSON body.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<u32>,
    allow: Option<String>,
    body: Value,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

/// Sends a request, from `from` (an `X-Forwarded-For` address) if given.
async fn send(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    from: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = api
        .client
        .request(method.clone(), format!("{}{path}", api.base));
    if let Some(from) = from {
        req = req.header("x-forwarded-for", from);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request sent");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = header("retry-after").and_then(|v| v.parse().ok());
    let allow = header("allow");
    let status = resp.status().as_u16();
    canvas_tests::contract::check(method.as_str(), path, status);
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        retry_after,
        allow,
        body,
    }
}

async fn signup_from(api: &Api, from: Option<&str>, email: &str, username: &str) -> Answer {
    send(
        api,
        reqwest::Method::POST,
        "/api/v1/auth/signup",
        from,
        Some(json!({ "email": email, "username": username, "password": PASSWORD })),
    )
    .await
}

async fn login_from(api: &Api, from: Option<&str>, email: &str, password: &str) -> Answer {
    send(
        api,
        reqwest::Method::POST,
        "/api/v1/auth/login",
        from,
        Some(json!({ "email": email, "password": password })),
    )
    .await
}

fn fresh(name: &str) -> (String, String) {
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
    (format!("{name}.{tag}@example.com"), format!("{name}_{tag}"))
}

fn assert_rate_limited(answer: &Answer, what: &str) {
    assert_eq!(
        (answer.status, answer.code()),
        (429, Some("rate_limited")),
        "{what}: {answer:?}"
    );
    assert!(
        answer.retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "{what}: Retry-After within the minute: {answer:?}"
    );
}

#[tokio::test]
async fn signups_are_limited_per_address_and_per_email() {
    let server = TestServer::start_with(|c| {
        c.trusted_proxies = 1;
        c.signup_rate_limit = 3;
        c.login_rate_limit = 2;
    })
    .await;
    let api = server.api();
    for i in 0..3 {
        let (email, username) = fresh(&format!("s{i}"));
        let answer = signup_from(&api, Some("203.0.113.1"), &email, &username).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let (email, username) = fresh("fourth");
    let refused = signup_from(&api, Some("203.0.113.1"), &email, &username).await;
    assert_rate_limited(&refused, "the 4th signup from one address in a minute");
    let other = signup_from(&api, Some("203.0.113.2"), &email, &username).await;
    assert_eq!(other.status, 201, "another address: {other:?}");

    // One email, tried again and again from fresh addresses: the email is the limit.
    let (_, username) = fresh("again");
    let taken = signup_from(&api, Some("203.0.113.3"), &email, &username).await;
    assert_eq!(taken.status, 409, "{taken:?}");
    let refused = signup_from(&api, Some("203.0.113.4"), &email, &username).await;
    assert_rate_limited(&refused, "the 3rd signup for one email");
}

#[tokio::test]
async fn concurrent_signups_from_one_address_are_cut_at_the_limit() {
    let server = TestServer::start_with(|c| c.signup_rate_limit = 8).await;
    let api = server.api();
    let answers = futures_util::future::join_all((0..64).map(|i| {
        let api = api.clone();
        async move {
            let (email, username) = fresh(&format!("flood{i}"));
            signup_from(&api, None, &email, &username).await
        }
    }))
    .await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    assert!(created <= 8, "at most the limit signs up: {created}");
    for answer in answers.iter().filter(|a| a.status != 201) {
        assert!(
            matches!(answer.code(), Some("rate_limited" | "busy")),
            "{answer:?}"
        );
        assert!(answer.retry_after.is_some(), "{answer:?}");
    }
}

#[tokio::test]
async fn hashing_is_bounded_and_a_caller_without_a_slot_gets_busy() {
    let server = TestServer::start_with(|c| {
        c.hash_concurrency = Some(1);
        c.hash_wait_ms = 50;
    })
    .await;
    let api = server.api();
    let ann = api.signup("ann").await;
    let held = server
        .state
        .passwords
        .permits()
        .clone()
        .acquire_owned()
        .await
        .unwrap();

    let (email, username) = fresh("waiting");
    let busy = signup_from(&api, None, &email, &username).await;
    assert_eq!((busy.status, busy.code()), (503, Some("busy")), "{busy:?}");
    assert_eq!(busy.retry_after, Some(1), "{busy:?}");
    assert!(busy.body["error"]["message"].is_string(), "{busy:?}");
    let busy = login_from(&api, None, &ann.email, PASSWORD).await;
    assert_eq!(busy.code(), Some("busy"), "a login hashes too: {busy:?}");
    let busy = login_from(&api, None, "nobody@example.com", PASSWORD).await;
    assert_eq!(
        busy.code(),
        Some("busy"),
        "an unknown email is checked against a hash as well: {busy:?}"
    );

    drop(held);
    let created = signup_from(&api, None, &email, &username).await;
    assert_eq!(created.status, 201, "a slot is free again: {created:?}");
    assert_eq!(
        login_from(&api, None, &ann.email, PASSWORD).await.status,
        200
    );
}

#[tokio::test]
async fn an_unknown_email_answers_like_a_wrong_password() {
    let server = TestServer::start_with(|c| c.login_rate_limit = 3).await;
    let api = server.api();
    let ann = api.signup("ann").await;
    let (nobody, _) = fresh("nobody");
    let mut known = vec![];
    let mut unknown = vec![];
    for _ in 0..4 {
        known.push(login_from(&api, None, &ann.email, "wrong guess 42").await);
        unknown.push(login_from(&api, None, &nobody, "wrong guess 42").await);
    }
    for (k, u) in known.iter().zip(&unknown) {
        assert_eq!(
            (k.status, &k.body),
            (u.status, &u.body),
            "the same answer for a real and a made-up account"
        );
    }
    assert_eq!(known[0].status, 401, "{:?}", known[0]);
    assert_eq!(known[0].body["error"]["message"], "wrong email or password");
    assert_rate_limited(&unknown[3], "an unknown account is limited like a real one");
    assert_rate_limited(&known[3], "a real account");
}

#[tokio::test]
async fn guessing_from_one_address_does_not_lock_out_the_owner() {
    let server = TestServer::start_with(|c| {
        c.trusted_proxies = 1;
        c.login_rate_limit = 3;
    })
    .await;
    let api = server.api();
    let ann = api.signup("ann").await;
    let attacker = Some("203.0.113.66");
    for _ in 0..3 {
        let answer = login_from(&api, attacker, &ann.email, "wrong guess 42").await;
        assert_eq!(answer.status, 401, "{answer:?}");
    }
    let refused = login_from(&api, attacker, &ann.email, "wrong guess 42").await;
    assert_rate_limited(&refused, "the guessing address");
    let owner = login_from(&api, Some("198.51.100.7"), &ann.email, PASSWORD).await;
    assert_eq!(owner.status, 200, "the owner elsewhere logs in: {owner:?}");
    let other = api.signup("bob").await;
    let answer = login_from(&api, attacker, &other.email, PASSWORD).await;
    assert_eq!(
        answer.status, 200,
        "the guessing address is limited for that account only: {answer:?}"
    );
}

#[tokio::test]
async fn a_spread_out_attack_holds_back_failing_addresses_only() {
    let server = TestServer::start_with(|c| {
        c.trusted_proxies = 1;
        c.login_rate_limit = 5;
        c.login_account_rate_limit = 4;
    })
    .await;
    let api = server.api();
    let ann = api.signup("ann").await;
    for i in 1..=4 {
        let from = format!("203.0.113.{i}");
        let answer = login_from(&api, Some(&from), &ann.email, "wrong guess 42").await;
        assert_eq!(answer.status, 401, "{answer:?}");
    }
    let again = login_from(&api, Some("203.0.113.1"), &ann.email, "wrong guess 43").await;
    assert_rate_limited(
        &again,
        "an address that failed, once the account is under attack",
    );
    let fresh_guess = login_from(&api, Some("203.0.113.9"), &ann.email, "wrong guess 44").await;
    assert_eq!(
        fresh_guess.status, 401,
        "an address with no failure may try: {fresh_guess:?}"
    );
    let owner = login_from(&api, Some("198.51.100.7"), &ann.email, PASSWORD).await;
    assert_eq!(owner.status, 200, "the owner logs in: {owner:?}");
}

#[tokio::test]
async fn forwarded_addresses_are_ignored_unless_a_proxy_is_trusted() {
    let server = TestServer::start_with(|c| c.login_ip_rate_limit = 3).await;
    let api = server.api();
    let (nobody, _) = fresh("nobody");
    for i in 1..=3 {
        let from = format!("203.0.113.{i}");
        let answer = login_from(&api, Some(&from), &nobody, "wrong guess 42").await;
        assert_eq!(answer.status, 401, "{answer:?}");
    }
    let refused = login_from(&api, Some("203.0.113.200"), &nobody, "x").await;
    assert_rate_limited(
        &refused,
        "a made-up X-Forwarded-For does not make a new address",
    );
    let (other, _) = fresh("other");
    let refused = login_from(&api, None, &other, "x").await;
    assert_rate_limited(&refused, "the address limit covers every account");
}

#[tokio::test]
async fn weak_passwords_are_refused_with_feedback() {
    let server = TestServer::start().await;
    let api = server.api();
    let (email, username) = fresh("mallory");
    for weak in ["password", "12345678", "        ", username.as_str()] {
        let answer = send(
            &api,
            reqwest::Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(json!({ "email": email, "username": username, "password": weak })),
        )
        .await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, Some("weak_password")),
            "{weak:?}: {answer:?}"
        );
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("too easy to guess"), "{message}");
    }
    let answer = send(
        &api,
        reqwest::Method::POST,
        "/api/v1/auth/signup",
        None,
        Some(json!({ "email": email, "username": username, "password": "password" })),
    )
    .await;
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("common password"),
        "zxcvbn's feedback is in the message: {message}"
    );
    let created = signup_from(&api, None, &email, &username).await;
    assert_eq!(created.status, 201, "{created:?}");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let server = TestServer::start().await;
    let api = server.api();
    for path in ["/api/v1/nope", "/nope", "/api/v1/canvases/x/y/z/w"] {
        let answer = send(&api, reqwest::Method::GET, path, None, None).await;
        assert_eq!(
            (answer.status, answer.code()),
            (404, Some("not_found")),
            "{path}: {answer:?}"
        );
        assert!(answer.body["error"]["message"].is_string(), "{answer:?}");
    }
    for (method, path, allowed) in [
        (reqwest::Method::DELETE, "/api/v1/auth/login", "POST"),
        (reqwest::Method::PUT, "/healthz", "GET"),
        (reqwest::Method::POST, "/api/v1/favorites", "GET"),
    ] {
        let answer = send(&api, method.clone(), path, None, None).await;
        assert_eq!(
            (answer.status, answer.code()),
            (405, Some("method_not_allowed")),
            "{method} {path}: {answer:?}"
        );
        assert!(
            answer.allow.as_deref().is_some_and(|a| a.contains(allowed)),
            "{method} {path}: Allow names {allowed}: {answer:?}"
        );
    }
}

#[tokio::test]
async fn template_thumbnails_are_web_addresses_and_publishing_is_the_operators_call() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let template = |extra: Value| {
        let mut body = json!({ "canvas_id": team.canvas, "name": "Board" });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for bad in [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/x.png",
        "ftp://files.example/x.png",
    ] {
        let (status, body) = api
            .post(
                "/api/v1/templates",
                Some(&team.owner.token),
                template(json!({ "thumbnail_url": bad })),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_template")),
            "{bad}: {body}"
        );
    }
    let (status, body) = api
        .post(
            "/api/v1/templates",
            Some(&team.owner.token),
            template(json!({ "thumbnail_url": "https://cdn.example.com/board.png" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["thumbnail_url"], "https://cdn.example.com/board.png");

    // Every user administers an organization of their own: that is not enough to publish
    // to every organization on the server.
    let (status, body) = api
        .post(
            "/api/v1/templates",
            Some(&team.owner.token),
            template(json!({ "is_public": true })),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (_, me) = api.get("/api/v1/auth/me", Some(&team.owner.token)).await;
    let org: uuid::Uuid = me["user"]["organization_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (canvas, owner, stranger) = (
        team.canvas.clone(),
        team.owner.clone(),
        team.stranger.clone(),
    );

    // The operator names the organization: its admins publish.
    let data = server.stop().await;
    let dir = data.as_ref().unwrap().path().to_path_buf();
    let server = TestServer::start_in(&dir, |c| c.template_publishers = vec![org]).await;
    let api = server.api();
    let (status, body) = api
        .post(
            "/api/v1/templates",
            Some(&owner.token),
            json!({ "canvas_id": canvas, "name": "For everyone", "is_public": true }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    let (status, _) = api
        .get(&format!("/api/v1/templates/{id}"), Some(&stranger.token))
        .await;
    assert_eq!(status, 200, "a public template reaches other organizations");
    server.stop().await;
    drop(data);
}

#[tokio::test]
async fn usernames_differing_only_in_case_are_one_account() {
    let server = TestServer::start().await;
    let api = server.api();
    let (email, username) = fresh("Ann");
    assert_eq!(signup_from(&api, None, &email, &username).await.status, 201);
    let (other_email, _) = fresh("other");
    let answer = signup_from(&api, None, &other_email, &username.to_lowercase()).await;
    assert_eq!(
        (answer.status, answer.code()),
        (409, Some("conflict")),
        "{answer:?}"
    );
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("username"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn names_with_control_or_direction_characters_are_refused() {
    let server = TestServer::start().await;
    let team = Team::new(&server).await;
    let api = &team.api;
    let token = Some(team.owner.token.as_str());
    let bad_names = [
        "invoice\u{202E}fdp.exe",
        "left\u{2066}right\u{2069}",
        "two\nlines",
        "bell\u{7}",
        "mark\u{200F}",
    ];
    for name in bad_names {
        let (status, body) = api
            .post("/api/v1/projects", token, json!({ "name": name }))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_name")),
            "project {name:?}: {body}"
        );
        let (status, body) = api
            .patch(
                &format!("/api/v1/projects/{}", team.project),
                token,
                json!({ "name": name }),
            )
            .await;
        assert_eq!(status, 400, "rename to {name:?}: {body}");
        let (status, body) = api
            .post(
                &format!("/api/v1/projects/{}/canvases", team.project),
                token,
                json!({ "name": name }),
            )
            .await;
        assert_eq!(status, 400, "canvas {name:?}: {body}");
        let (status, body) = api
            .post(
                &format!("/api/v1/projects/{}/canvases", team.project),
                token,
                json!({ "name": "Fine", "tags": [name] }),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_tags")),
            "tag {name:?}: {body}"
        );
        let (status, body) = api
            .post(
                "/api/v1/templates",
                token,
                json!({ "canvas_id": team.canvas, "name": name }),
            )
            .await;
        assert_eq!(status, 400, "template {name:?}: {body}");
    }
    let (email, _) = fresh("bidi");
    let answer = send(
        api,
        reqwest::Method::POST,
        "/api/v1/auth/signup",
        None,
        Some(json!({ "email": email, "username": "ann\u{202E}nimda", "password": PASSWORD })),
    )
    .await;
    assert_eq!(answer.code(), Some("invalid_username"), "{answer:?}");
    let (status, body) = api
        .post(
            "/api/v1/projects",
            token,
            json!({ "name": "Q4 — Umsätze, 東京" }),
        )
        .await;
    assert_eq!(status, 201, "ordinary Unicode names stay welcome: {body}");
}

/// The login limits live in Redis when it is configured, so every node sharing it counts
/// the same failures: guessing on one node and then on another gains nothing, and the
/// owner still logs in from their own address on either.
#[tokio::test]
async fn login_limits_are_shared_by_the_nodes_on_redis() {
    use canvas_storage::testing::{Service, service_url};
    let prefix = format!("auth_{}:", uuid::Uuid::new_v4().simple());
    let redis = |c: &mut canvas_server::Config| {
        c.redis_url = Some(service_url(Service::Redis));
        c.redis_key_prefix = prefix.clone();
        c.trusted_proxies = 1;
        c.login_rate_limit = 3;
    };
    let first = TestServer::start_with(redis).await;
    let second = TestServer::start_in(&first.data_dir, redis).await;
    let (a, b) = (first.api(), second.api());
    let ann = a.signup("ann").await;
    let attacker = Some("203.0.113.66");
    for api in [&a, &b, &a] {
        let answer = login_from(api, attacker, &ann.email, "wrong guess 42").await;
        assert_eq!(answer.status, 401, "{answer:?}");
    }
    for api in [&a, &b] {
        let refused = login_from(api, attacker, &ann.email, "wrong guess 42").await;
        assert_rate_limited(&refused, "three failures over two nodes");
    }
    let (nobody, _) = fresh("nobody");
    for api in [&b, &a, &b] {
        login_from(api, attacker, &nobody, "wrong guess 42").await;
    }
    let refused = login_from(&a, attacker, &nobody, "wrong guess 42").await;
    assert_rate_limited(&refused, "an unknown account, on Redis too");
    let owner = login_from(&b, Some("198.51.100.7"), &ann.email, PASSWORD).await;
    assert_eq!(owner.status, 200, "{owner:?}");
    second.stop().await;
    first.stop().await;
}
