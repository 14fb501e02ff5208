//! The daemon's web dashboard and the API behind it, from outside: in a
//! real headless Chromium (Debian's, through ChromeDriver) and over plain
//! HTTP. Screenshots of each page are kept under
//! `target/tmp/dashboard-screenshots/` (not committed).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::web::{free_port, get, request, wait_for, Browser, Reaped, Response};
use common::*;
use serde_json::{json, Value};

/// A repository with two plans and their history: `www` backed up and
/// drilled (healthy), `stale` backed up but never verified against an RPO
/// of one minute (missing it).
struct World {
    env: TestEnv,
    config: PathBuf,
    source: PathBuf,
    restores: PathBuf,
}

impl World {
    fn new(daemon: &str) -> World {
        let env = TestEnv::new();
        env.init();
        let source = env.path("src");
        let mut rng = Rng::new(11);
        write_random(&source.join("docs/report.bin"), 200_000, &mut rng);
        write_file(&source.join("docs/readme.txt"), b"read me\n");
        write_file(&source.join("index.html"), b"<h1>www</h1>\n");
        let restores = env.path("restores");
        std::fs::create_dir_all(&restores).unwrap();
        std::fs::create_dir_all(env.path("scratch")).unwrap();
        let config = env.path("bunker.toml");
        std::fs::write(
            &config,
            format!(
                "[repositories.main]\nurl = \"{}\"\npassword-file = \"{}\"\n\n\
                 [plans.www]\nrepository = \"main\"\npaths = [\"{}\"]\nrpo = \"1d\"\nrto = \"1h\"\n\
                 [plans.www.drill]\nscratch = \"{}\"\n\n\
                 [plans.stale]\nrepository = \"main\"\npaths = [\"{}\"]\nrpo = \"1m\"\n\n\
                 [daemon]\nrestore-roots = [\"{}\"]\n{daemon}\n",
                env.repo.display(),
                env.password_file.display(),
                source.display(),
                env.path("scratch").display(),
                source.join("docs").display(),
                restores.display(),
            ),
        )
        .unwrap();
        let world = World {
            env,
            config,
            source,
            restores,
        };
        for args in [["run", "www"], ["drill", "www"], ["run", "stale"]] {
            expect_code(&world.bunker(&args), 0, &args.join(" "));
        }
        world
    }

    fn bunker(&self, args: &[&str]) -> std::process::Output {
        run(bunker(&self.env)
            .arg("--config")
            .arg(&self.config)
            .args(args))
    }

    /// Starts `bunker daemon` on `addr`; returns it once /healthz answers.
    fn daemon(&self) -> Reaped {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_bunker"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.env.home)
            .arg("--config")
            .arg(&self.config)
            .arg("daemon")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Reaped(Some(child))
    }
}

fn listen(port: u16) -> String {
    format!("listen = \"127.0.0.1:{port}\"")
}

fn wait_healthy(addr: &str) {
    wait_for(30, "/healthz", || {
        request(addr, "GET", "/healthz", &[], b"").is_some_and(|r| r.status == 200)
    });
}

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots")
}

fn post_json(addr: &str, path: &str, body: &Value, headers: &[(&str, &str)]) -> Response {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    request(addr, "POST", path, &h, body.to_string().as_bytes()).expect("the daemon answers")
}

/// The newest `www` snapshot's id, from the API.
fn newest_www(addr: &str, headers: &[(&str, &str)]) -> String {
    let r = get(addr, "/api/repositories/main/snapshots?plan=www", headers);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["snapshots"][0]["id"].as_str().unwrap().to_string()
}

#[test]
fn the_dashboard_in_a_browser_shows_health_runs_snapshots_and_restores() {
    let Some((chromium, chromedriver)) = common::web::browser() else {
        return;
    };
    let port = free_port();
    let world = World::new(&listen(port));
    let addr = format!("127.0.0.1:{port}");
    let _daemon = world.daemon();
    wait_healthy(&addr);
    let base = format!("http://{addr}");
    let b = Browser::start(&chromium, &chromedriver, shots());

    // The overview: one card per plan, its light in a word as well as a colour.
    b.goto(&format!("{base}/"));
    let www = b.find("article[data-plan=www] .light");
    assert_eq!(b.attribute(&www, "data-health").as_deref(), Some("green"));
    assert!(b.text(&www).contains("recoverable"));
    let stale = b.find("article[data-plan=stale] .light");
    assert_eq!(b.attribute(&stale, "data-health").as_deref(), Some("red"));
    assert!(b.text(&stale).contains("target missed"));
    let card = b.text(&b.find("article[data-plan=stale]"));
    assert!(
        card.contains("RPO missed") && card.contains("target 1 min"),
        "{card}"
    );
    let card = b.text(&b.find("article[data-plan=www]"));
    assert!(card.contains("✔ met") && card.contains("100%"), "{card}");
    assert!(b.page_text().contains("Repositories"));
    b.screenshot("overview");
    // The keyboard reaches the skip link first; it leads to the content.
    b.tab();
    assert_eq!(b.run("return document.activeElement.className"), "skip");
    // On a phone the page fits its width; in dark mode the page is dark.
    b.set_size(390, 844);
    b.goto(&format!("{base}/"));
    let fits = b.run("return document.documentElement.scrollWidth <= window.innerWidth");
    assert_eq!(fits, true, "the overview scrolls sideways on a phone");
    b.screenshot("overview-phone");
    b.set_size(1200, 1000);
    b.color_scheme("dark");
    b.goto(&format!("{base}/"));
    let background = b.run("return getComputedStyle(document.body).backgroundColor");
    assert_eq!(background, "rgb(17, 20, 24)");
    b.screenshot("overview-dark");
    b.color_scheme("light");

    // Run now: confirmed, then the run appears and its result shows,
    // without reloading (the live script refreshes the page).
    b.click(&b.find("article[data-plan=www] h2 a"));
    b.wait("a.button[href='/plans/www/confirm/run']", 10);
    assert_eq!(b.all("tr[data-kind=backup]").len(), 1);
    b.screenshot("plan");
    b.click(&b.find("a.button[href='/plans/www/confirm/run']"));
    b.wait("form[action='/plans/www/run']", 10);
    let confirm = b.page_text();
    assert!(confirm.contains("Run a backup of plan www?"), "{confirm}");
    b.screenshot("confirm-run");
    write_file(&world.source.join("index.html"), b"<h1>www, changed</h1>\n");
    b.click(&b.find("main form button[type=submit]"));
    b.wait("p.notice", 10);
    b.wait("li[data-result=backup]", 60);
    let result = b.text(&b.find("li[data-result=backup]"));
    assert!(result.contains("succeeded"), "{result}");
    wait_for(30, "the run in the history", || {
        b.all("tr[data-kind=backup]").len() == 2
    });
    b.screenshot("plan-after-run");

    // Snapshots: filtered by plan, browsed, a file downloaded byte for byte.
    b.goto(&format!("{base}/snapshots?repository=main&plan=www"));
    b.wait("table.snapshots", 10);
    assert_eq!(b.all("table.snapshots tbody tr").len(), 2);
    b.screenshot("snapshots");
    b.click(&b.find("table.snapshots tbody tr a"));
    b.wait("table.tree", 10);
    // The root offers the backed-up folder at once; its folders open below it.
    b.click(&b.find("a.backed-up"));
    b.click(&b.wait("table.tree a[href$='docs']", 10));
    let docs = world.source.join("docs");
    let link = b.wait(
        &format!("a[data-download='{}/report.bin']", docs.display()),
        10,
    );
    let href = b.attribute(&link, "href").unwrap();
    let got = b.fetch_bytes(&href);
    assert_eq!(
        got,
        std::fs::read(world.source.join("docs/report.bin")).unwrap()
    );
    b.screenshot("browse");

    // Restore a folder: reviewed (nothing overwritten), then done and verified.
    let restore = b.find("p.actions a.button[href*='/restore?']");
    b.click(&restore);
    let target = b.wait("input#target", 10);
    let into = world.restores.join("first");
    b.type_into(&target, &into.display().to_string());
    b.click(&b.find("main form button[type=submit]"));
    b.wait("input[name=target][type=hidden]", 10);
    let review = b.page_text();
    assert!(review.contains("overwriting nothing"), "{review}");
    b.screenshot("restore-review");
    b.click(&b.find("main form button[type=submit]"));
    b.wait("p[role=status]", 60);
    let done = b.page_text();
    assert!(
        done.contains("Restored") && done.contains("verified"),
        "{done}"
    );
    b.screenshot("restore-done");
    assert_same_contents(&world.source.join("docs"), &into);

    // Compare the two snapshots after a change.
    b.goto(&format!("{base}/snapshots?repository=main&plan=www"));
    b.wait("table.snapshots", 10);
    let rows = b.all("table.snapshots tbody tr");
    assert_eq!(rows.len(), 2);
    b.click(&b.find("table.snapshots tbody tr:nth-child(2) input[name=a]"));
    b.click(&b.find("table.snapshots tbody tr:nth-child(1) input[name=b]"));
    b.click(&b.find("form[action^='/diff/'] button[type=submit]"));
    b.wait("table.diff", 10);
    let diff = b.page_text();
    let changed = format!("modified {}", world.source.join("index.html").display());
    assert!(diff.contains(&changed), "{diff}");
    assert!(!diff.contains("readme.txt"), "{diff}");
    b.screenshot("diff");
}

#[test]
fn with_a_password_every_page_needs_a_session_and_the_api_the_token() {
    let Some((chromium, chromedriver)) = common::web::browser() else {
        return;
    };
    let port = free_port();
    let env_dir = tempfile::tempdir().unwrap();
    let secret = |name: &str, text: &str| {
        let p = env_dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // The hash comes from the binary itself, the password on standard input.
    let hashed = std::process::Command::new(env!("CARGO_BIN_EXE_bunker"))
        .args(["daemon", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"open sesame\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(hashed.status.success());
    let hash = String::from_utf8(hashed.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("open sesame"));
    let password_file = secret("dashboard.hash", &hash);
    let token = "a-long-random-api-token-0123456789";
    let token_file = secret("api.token", token);
    let world = World::new(&format!(
        "{}\npassword-file = \"{}\"\ntoken-file = \"{}\"\n",
        listen(port),
        password_file.display(),
        token_file.display()
    ));
    let addr = format!("127.0.0.1:{port}");
    let _daemon = world.daemon();
    wait_healthy(&addr);

    // Over HTTP: only /healthz is open; the token opens the API.
    assert_eq!(get(&addr, "/api/plans", &[]).status, 401);
    assert_eq!(get(&addr, "/metrics", &[]).status, 401);
    let r = get(&addr, "/", &[]);
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().starts_with("/login"));
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let plans = get(&addr, "/api/plans", &auth);
    assert_eq!(plans.status, 200);
    let text = plans.text();
    assert!(
        text.contains("\"www\"")
            && !text.contains("password")
            && !text.contains(&world.env.password_file.display().to_string()),
        "{text}"
    );
    assert_eq!(
        get(
            &addr,
            "/api/plans",
            &[("authorization", "Bearer wrong-token-0123456789")]
        )
        .status,
        401
    );
    // A token call needs no CSRF token; a foreign origin is refused whoever calls.
    let r = post_json(&addr, "/api/plans/stale/check", &json!({}), &auth);
    assert_eq!(r.status, 202, "{}", r.text());
    let r = post_json(
        &addr,
        "/api/plans/stale/check",
        &json!({}),
        &[auth[0], ("origin", "https://evil.example")],
    );
    assert_eq!(r.status, 403);

    // A session from the login form; without its CSRF token a POST is refused.
    let login = request(
        &addr,
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"password=open+sesame&next=%2F",
    )
    .unwrap();
    assert_eq!(login.status, 303, "{}", login.text());
    let cookie = login.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let page = get(&addr, "/", &[("cookie", &session)]);
    assert_eq!(page.status, 200);
    let html = page.text();
    let csrf = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let form = |body: &str, extra: &[(&str, &str)]| {
        let mut h = vec![
            ("cookie", session.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        h.extend_from_slice(extra);
        request(&addr, "POST", "/plans/stale/check", &h, body.as_bytes()).unwrap()
    };
    assert_eq!(form("", &[]).status, 403);
    assert_eq!(form("csrf=0000", &[]).status, 403);
    assert_eq!(
        form(
            &format!("csrf={csrf}"),
            &[("origin", "http://evil.example")]
        )
        .status,
        403
    );
    assert_eq!(form(&format!("csrf={csrf}"), &[]).status, 303);
    let wrong = request(
        &addr,
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"password=guess",
    )
    .unwrap();
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());

    // In the browser: sent to sign in, a wrong password told, then in and out.
    let base = format!("http://{addr}");
    let b = Browser::start(&chromium, &chromedriver, shots());
    b.goto(&format!("{base}/plans/www"));
    let field = b.wait("input#password", 10);
    b.screenshot("login");
    b.type_into(&field, "not it");
    b.click(&b.find("main form button[type=submit]"));
    b.wait("p.problem", 10);
    assert!(b.page_text().contains("Wrong password"));
    b.type_into(&b.find("input#password"), "open sesame");
    b.click(&b.find("main form button[type=submit]"));
    b.wait("a.button[href='/plans/www/confirm/run']", 10);
    assert!(
        b.url().ends_with("/plans/www"),
        "back where it was going: {}",
        b.url()
    );
    b.click(&b.find("form.signout button"));
    b.wait("input#password", 10);
    b.goto(&format!("{base}/"));
    b.wait("input#password", 10);
}

#[test]
fn the_api_refuses_foreign_hosts_and_restores_only_inside_the_roots() {
    let port = free_port();
    let world = World::new(&listen(port));
    let addr = format!("127.0.0.1:{port}");
    let _daemon = world.daemon();
    wait_healthy(&addr);

    // Without authentication, only loopback names are answered (DNS rebinding).
    assert_eq!(
        get(&addr, "/api/plans", &[("host", "evil.example:80")]).status,
        421
    );
    assert_eq!(
        get(
            &addr,
            "/api/plans",
            &[("host", &format!("localhost:{port}"))]
        )
        .status,
        200
    );
    // A browser's cross-site POST is refused; so is a same-site one without the token.
    let r = post_json(
        &addr,
        "/api/plans/stale/check",
        &json!({}),
        &[("sec-fetch-site", "cross-site")],
    );
    assert_eq!(r.status, 403);
    let r = post_json(
        &addr,
        "/api/plans/stale/check",
        &json!({}),
        &[("origin", &format!("http://{addr}"))],
    );
    assert_eq!(r.status, 403, "a browser's request needs the CSRF token");

    // The plans and the report say what the overview shows.
    let plans = get(&addr, "/api/plans", &[]).json();
    let names: Vec<&str> = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["stale", "www"]);
    let report = get(&addr, "/api/report", &[]).json();
    let health: Vec<(&str, &str)> = report["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["health"]["level"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(health, [("stale", "red"), ("www", "green")]);

    // The run history; the differences between two snapshots (none with itself).
    let runs = get(&addr, "/api/plans/www/runs", &[]).json();
    let kinds: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"backup") && kinds.contains(&"drill"),
        "{kinds:?}"
    );
    assert_eq!(get(&addr, "/api/plans/nope/runs", &[]).status, 404);
    let id = newest_www(&addr, &[]);
    let stale = get(&addr, "/api/repositories/main/snapshots?plan=stale", &[]).json();
    let stale = stale["snapshots"][0]["id"].as_str().unwrap().to_string();
    let diff = get(
        &addr,
        &format!("/api/repositories/main/diff?a={id}&b={id}"),
        &[],
    )
    .json();
    assert_eq!(diff["changes"], json!([]));
    let diff = get(
        &addr,
        &format!("/api/repositories/main/diff?a={stale}&b={id}"),
        &[],
    )
    .json();
    let index = world.source.join("index.html").display().to_string();
    assert!(
        diff["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == index.as_str() && c["change"] == "added"),
        "{diff}"
    );
    // A drill only where the plan has one.
    assert_eq!(
        post_json(&addr, "/api/plans/stale/drill", &json!({}), &[]).status,
        409
    );

    // Browse and download.
    let docs = world.source.join("docs").display().to_string();
    let tree = get(
        &addr,
        &format!("/api/repositories/main/snapshots/{id}/tree?path={docs}"),
        &[],
    )
    .json();
    let names: Vec<&str> = tree["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["readme.txt", "report.bin"]);
    let file = get(
        &addr,
        &format!("/api/repositories/main/snapshots/{id}/file?path={docs}/report.bin"),
        &[],
    );
    assert_eq!(file.status, 200);
    assert_eq!(
        file.body,
        std::fs::read(world.source.join("docs/report.bin")).unwrap()
    );
    assert!(file
        .header("content-disposition")
        .unwrap()
        .contains("report.bin"));
    assert_eq!(
        get(
            &addr,
            &format!("/api/repositories/main/snapshots/{id}/file?path=/nope"),
            &[]
        )
        .status,
        404
    );
    assert_eq!(
        get(&addr, "/api/repositories/nope/snapshots", &[]).status,
        404
    );

    // Restores: only inside the roots, judged on the real path.
    let restore = |target: &Path, overwrite: bool| {
        post_json(
            &addr,
            &format!("/api/repositories/main/snapshots/{id}/restore"),
            &json!({"path": docs, "target": target, "overwrite": overwrite}),
            &[],
        )
    };
    let outside = world.env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, world.restores.join("escape")).unwrap();
    for bad in [
        outside.clone(),
        world.restores.join("../outside"),
        world.restores.join("escape/x"),
        PathBuf::from("relative"),
    ] {
        let r = restore(&bad, false);
        assert_eq!(r.status, 403, "{}: {}", bad.display(), r.text());
    }
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    let into = world.restores.join("api");
    let r = restore(&into, false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_same_contents(&world.source.join("docs"), &into);
    // A restore that would replace a changed file asks first.
    write_file(&into.join("readme.txt"), b"changed locally\n");
    let r = restore(&into, false);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("readme.txt"));
    assert_eq!(
        std::fs::read(into.join("readme.txt")).unwrap(),
        b"changed locally\n"
    );
    let r = restore(&into, true);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        std::fs::read(into.join("readme.txt")).unwrap(),
        b"read me\n"
    );

    // Live events: a state event with the generation.
    let events = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "GET /api/events HTTP/1.1\r\nhost: {addr}\r\n\r\n").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("\"generation\"") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    };
    assert!(
        events.contains("text/event-stream") && events.contains("event: state"),
        "{events}"
    );
}

#[test]
fn a_daemon_beyond_loopback_needs_authentication_and_can_speak_tls() {
    let world = World::new("listen = \"0.0.0.0:0\"");
    let out = world.bunker(&["daemon"]);
    expect_code(&out, 1, "daemon on 0.0.0.0 without auth");
    let e = stderr(&out);
    assert!(
        e.contains("not a loopback address") && e.contains("password-file"),
        "{e}"
    );

    // TLS with a self-signed certificate, read by curl.
    let (Ok(_), Ok(_)) = (which("openssl"), which("curl")) else {
        eprintln!("skipped: TLS part needs openssl and curl");
        return;
    };
    let dir = world.env.path("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let port = free_port();
    let token = "tls-token-0123456789abcdef";
    std::fs::write(dir.join("token"), token).unwrap();
    let text = std::fs::read_to_string(&world.config).unwrap().replace(
        "listen = \"0.0.0.0:0\"",
        &format!(
            "{}\ntls-cert = \"{}\"\ntls-key = \"{}\"\ntoken-file = \"{}\"\nmetrics-public = true",
            listen(port),
            dir.join("cert.pem").display(),
            dir.join("key.pem").display(),
            dir.join("token").display()
        ),
    );
    std::fs::write(&world.config, text).unwrap();
    let _daemon = world.daemon();
    let curl = |path: &str, auth: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sk", "--max-time", "5", "-w", "\n%{http_code}"])
            .args(auth)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    wait_for(30, "https /healthz", || {
        curl("/healthz", &[]) == "ok\n\n200"
    });
    // metrics-public opens /metrics alone; the rest needs the token.
    let metrics = curl("/metrics", &[]);
    assert!(
        metrics.ends_with("\n200") && metrics.contains("bunker_plan_rpo_seconds"),
        "{metrics}"
    );
    assert!(curl("/api/plans", &[]).ends_with("401"));
    let bearer = format!("Authorization: Bearer {token}");
    let page = curl("/", &["-H", &bearer]);
    assert!(
        page.contains("Can we recover?") && page.ends_with("200"),
        "{page}"
    );
    // Plain HTTP gets no page.
    assert!(
        request(&format!("127.0.0.1:{port}"), "GET", "/healthz", &[], b"")
            .is_none_or(|r| r.status != 200)
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
