//! Headless Chromium driven over the W3C WebDriver protocol (chromedriver), spoken to with the
//! suite's own HTTP client: no browser-automation crate to build. Debian: `apt-get install
//! chromium chromium-driver` (`.ci/run` installs them when missing).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The key under which WebDriver returns an element's id.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: reqwest::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and any browser a failed test left open.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn install_hint() -> String {
    "this test drives headless Chromium, and /usr/bin/chromium or chromedriver is missing: \
     install them with `apt-get install chromium chromium-driver` (.ci/run does this when they are missing)"
        .to_string()
}

impl Browser {
    pub async fn start() -> Browser {
        if !std::path::Path::new("/usr/bin/chromium").exists() {
            panic!("{}", install_hint());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // In a process group of its own, so that the browsers it starts go with it.
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|_| panic!("{}", install_hint()));
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = client.get(format!("{base}/status")).send().await {
                if r.json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true)
                {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            client,
        };
        let created = browser
            .call(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--no-first-run"]
                    }
                }}}),
            )
            .await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = self.client.request(method.clone(), &url);
        let request = if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
            request
        } else {
            request.json(&body)
        };
        let answer: Value = request
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("WebDriver answers JSON");
        answer["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Ends the session (and so the browser) before the driver goes.
    pub async fn close(self) {
        let path = self.session_path("");
        self.call(reqwest::Method::DELETE, &path, Value::Null).await;
    }

    pub async fn open(&self, url: &str) {
        let path = self.session_path("/url");
        self.call(reqwest::Method::POST, &path, json!({ "url": url }))
            .await;
    }

    pub async fn current_url(&self) -> String {
        let path = self.session_path("/url");
        self.call(reqwest::Method::GET, &path, Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The id of the first element matching `css`, if there is one.
    async fn find(&self, css: &str) -> Option<String> {
        let found = self.locate("/element", css).await;
        found[ELEMENT].as_str().map(str::to_string)
    }

    /// WebDriver's `/element` (the first match) or `/elements` (all) for a CSS selector.
    async fn locate(&self, endpoint: &str, css: &str) -> Value {
        let path = self.session_path(endpoint);
        self.call(
            reqwest::Method::POST,
            &path,
            json!({"using": "css selector", "value": css}),
        )
        .await
    }

    async fn element(&self, css: &str) -> String {
        self.find(css)
            .await
            .unwrap_or_else(|| panic!("no element '{css}'"))
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        let path = self.session_path(&format!("/element/{id}/value"));
        self.call(reqwest::Method::POST, &path, json!({ "text": text }))
            .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        let path = self.session_path(&format!("/element/{id}/click"));
        self.call(reqwest::Method::POST, &path, json!({})).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        let path = self.session_path(&format!("/element/{id}/text"));
        self.call(reqwest::Method::GET, &path, Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Adds a WebDriver virtual authenticator (WebAuthn spec, "Automation"): a platform
    /// authenticator with resident keys and user verification that always consents. Its id.
    pub async fn add_virtual_authenticator(&self) -> String {
        let path = self.session_path("/webauthn/authenticator");
        let added = self
            .call(
                reqwest::Method::POST,
                &path,
                json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserConsenting": true,
                    "isUserVerified": true
                }),
            )
            .await;
        added
            .as_str()
            .unwrap_or_else(|| panic!("no virtual authenticator: {added}"))
            .to_string()
    }

    /// Removes a virtual authenticator, with the passkeys it holds.
    pub async fn remove_virtual_authenticator(&self, authenticator: &str) {
        let path = self.session_path(&format!("/webauthn/authenticator/{authenticator}"));
        self.call(reqwest::Method::DELETE, &path, Value::Null).await;
    }

    /// The credentials the virtual authenticator holds.
    pub async fn authenticator_credentials(&self, authenticator: &str) -> Vec<Value> {
        let path = self.session_path(&format!(
            "/webauthn/authenticator/{authenticator}/credentials"
        ));
        let held = self.call(reqwest::Method::GET, &path, Value::Null).await;
        held.as_array()
            .unwrap_or_else(|| panic!("no credentials list: {held}"))
            .clone()
    }

    /// Sizes the window (a phone: 390 x 844).
    pub async fn resize(&self, width: u32, height: u32) {
        let path = self.session_path("/window/rect");
        self.call(
            reqwest::Method::POST,
            &path,
            json!({ "width": width, "height": height }),
        )
        .await;
    }

    /// Waits until the element exists and is shown; panics with the page's visible error
    /// otherwise, so a failed flow says what the page said.
    pub async fn wait_visible(&self, css: &str) {
        for _ in 0..400 {
            if self.is_visible(css).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "'{css}' never showed; the page's error: {}",
            self.page_error().await
        );
    }

    /// Whether the element exists and is shown.
    pub async fn is_visible(&self, css: &str) -> bool {
        let Some(id) = self.find(css).await else {
            return false;
        };
        let path = self.session_path(&format!("/element/{id}/displayed"));
        self.call(reqwest::Method::GET, &path, Value::Null).await == Value::Bool(true)
    }

    /// What the page's `#error` says, if it is shown (for failure messages).
    async fn page_error(&self) -> Value {
        self.script(
            "var e = document.getElementById('error'); return e && !e.hidden ? e.textContent : '';",
        )
        .await
    }

    /// Waits until the element's text contains `needle`; its last text otherwise.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let mut text = String::new();
        for _ in 0..400 {
            if self.is_visible(css).await {
                text = self.text(css).await;
                if text.contains(needle) {
                    return text;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "'{css}' never said '{needle}'; it says '{text}'; the page's error: {}",
            self.page_error().await
        );
    }

    /// An element's property (e.g. `src`, `value`).
    pub async fn property(&self, css: &str, name: &str) -> String {
        let id = self.element(css).await;
        let path = self.session_path(&format!("/element/{id}/property/{name}"));
        self.call(reqwest::Method::GET, &path, Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The texts of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let found = self.locate("/elements", css).await;
        let mut texts = Vec::new();
        for element in found.as_array().cloned().unwrap_or_default() {
            let id = element[ELEMENT].as_str().unwrap_or_default().to_string();
            let path = self.session_path(&format!("/element/{id}/text"));
            let text = self.call(reqwest::Method::GET, &path, Value::Null).await;
            texts.push(text.as_str().unwrap_or_default().to_string());
        }
        texts
    }

    /// Runs `body` (a function body) in the page; what it returns.
    pub async fn script(&self, body: &str) -> Value {
        let path = self.session_path("/execute/sync");
        self.call(
            reqwest::Method::POST,
            &path,
            json!({ "script": body, "args": [] }),
        )
        .await
    }

    /// The element that has the keyboard focus: its id.
    pub async fn focused_id(&self) -> String {
        self.script("return document.activeElement ? document.activeElement.id : '';")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Presses keys in the focused element (WebDriver key codes, e.g. "\u{E007}" for Enter).
    pub async fn keys(&self, text: &str) {
        let path = self.session_path("/actions");
        let actions: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.call(
            reqwest::Method::POST,
            &path,
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
    }

    /// A screenshot of the page, saved as `NAME.png` in the test artefacts' folder
    /// (`MFAGATE_TEST_ARTIFACTS`, default `target/test-artifacts`), under `folder`.
    pub async fn screenshot(&self, folder: &str, name: &str) {
        let path = self.session_path("/screenshot");
        let png = self.call(reqwest::Method::GET, &path, Value::Null).await;
        let bytes = data_encoding::BASE64
            .decode(png.as_str().unwrap_or_default().as_bytes())
            .expect("a base64 PNG");
        let root = std::env::var("MFAGATE_TEST_ARTIFACTS").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/test-artifacts").to_string()
        });
        let dir = std::path::Path::new(&root).join(folder);
        std::fs::create_dir_all(&dir).expect("artefacts folder");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("screenshot written");
    }

    /// Empties an input.
    pub async fn clear(&self, css: &str) {
        let id = self.element(css).await;
        let path = self.session_path(&format!("/element/{id}/clear"));
        self.call(reqwest::Method::POST, &path, json!({})).await;
    }

    /// The element's text once it is not empty and not the "One moment…" placeholder.
    pub async fn settled_text(&self, css: &str) -> String {
        let mut text = String::new();
        for _ in 0..100 {
            text = self.text(css).await;
            if !text.is_empty() && !text.starts_with("One moment") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        text
    }
}
