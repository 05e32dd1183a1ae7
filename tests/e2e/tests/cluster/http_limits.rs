//! #16's HTTP hardening of `moor run`'s server, against the real process: oversized
//! headers and bodies, slow clients, the connection cap, and the force-run form from
//! another site.

use std::time::Duration;

use moor_e2e::{Controller, Project, cluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_moor-under-test");
const TOKEN: &str = "s3cret-api-token";

async fn connect(moor: &Controller) -> anyhow::Result<TcpStream> {
    Ok(TcpStream::connect(moor.url.trim_start_matches("http://")).await?)
}

/// Sends `request` on a new connection; the status line of the answer.
async fn status_line(moor: &Controller, request: &[u8]) -> anyhow::Result<String> {
    let mut stream = connect(moor).await?;
    stream.write_all(request).await?;
    let mut answer = vec![0; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await??;
    Ok(String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_large_requests_are_cut_off() -> anyhow::Result<()> {
    let client = cluster().client().await?;
    let p = Project::new(&client, "http-limits").await?;
    p.file("app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  k: v\n");
    let config = p.config_with(
        "api_token = { env = \"MOOR_TEST_TOKEN\" }",
        "",
        "[[pipeline]]\nname = \"web\"\nsource = \"local\"\ninterval = \"1h\"\n",
    );
    let moor = Controller::start(BIN, &config, &[], &[("MOOR_TEST_TOKEN", TOKEN)]).await?;
    moor.runs("web", 1, 60).await?;

    // Headers over 16 KiB: 431.
    let big = format!("GET /healthz HTTP/1.1\r\nhost: moor\r\nx-padding: {}\r\n\r\n", "a".repeat(20 * 1024));
    let answer = status_line(&moor, big.as_bytes()).await?;
    assert!(answer.contains(" 431 "), "{answer}");
    // A body over 4 MiB: 413, before any handler reads it.
    let body = "x".repeat(5 * 1024 * 1024);
    let (code, _) = moor.post("/hooks/web", None, &[], &body).await?;
    assert_eq!(code, 413);

    // A client that never finishes its headers is dropped after 5 s.
    let mut slow = connect(&moor).await?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: moor\r\n").await?;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a slow client's connection stays open");

    // At most 256 connections are served at once; one more waits until one closes.
    let mut held = Vec::new();
    for _ in 0..256 {
        held.push(connect(&moor).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = tokio::spawn({
        let url = moor.url.clone();
        async move { reqwest::get(format!("{url}/healthz")).await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!waiting.is_finished(), "the 257th connection was served while 256 were open");
    drop(held);
    let code = tokio::time::timeout(Duration::from_secs(10), waiting).await???;
    assert_eq!(code, 200);

    // The force-run form refuses other sites, even with the right token, and the page
    // may not be framed.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let path = "/ui/pipelines/web/reconcile";
    let body = format!("token={TOKEN}");
    let (code, text) = moor.post(path, None, &[form[0], ("origin", "https://evil.example")], &body).await?;
    assert_eq!(code, 403, "{text}");
    let (code, text) = moor.post(path, None, &[form[0], ("sec-fetch-site", "cross-site")], &body).await?;
    assert_eq!(code, 403, "{text}");
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let same_origin = no_redirects
        .post(format!("{}{path}", moor.url))
        .header(form[0].0, form[0].1)
        .header("sec-fetch-site", "same-origin")
        .header("origin", &moor.url)
        .body(body.clone())
        .send()
        .await?;
    assert_eq!(same_origin.status().as_u16(), 303);
    moor.runs("web", 2, 30).await?;
    let page = reqwest::get(format!("{}/", moor.url)).await?;
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["content-security-policy"], "frame-ancestors 'none'");
    Ok(())
}
