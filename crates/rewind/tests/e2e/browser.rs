//! A real browser for the console's tests: headless Chromium driven over WebDriver by a
//! `chromedriver` of its own on a free loopback port, one per test (tests run in parallel
//! and share nothing). Both come from the system's packages (`chromium`, `chromium-driver`).
//!
//! Without them a browser test says why and passes as skipped, unless [`BROWSER_VAR`] is
//! `required` (CI sets it): then a missing browser fails the test.

use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

/// `required`: a test that finds no browser fails instead of being skipped.
pub const BROWSER_VAR: &str = "REWIND_TEST_BROWSER";
/// The Chromium binary, if not `/usr/bin/chromium`.
pub const CHROMIUM_VAR: &str = "REWIND_TEST_CHROMIUM";
/// A directory where the tests save their screenshots (the documentation's pictures).
pub const SCREENSHOTS_VAR: &str = "REWIND_CONSOLE_SCREENSHOTS";

/// How long chromedriver may take to answer after it starts, and a page to show an element.
const DRIVER_READY_WITHIN: Duration = Duration::from_secs(20);
const ELEMENT_WITHIN: Duration = Duration::from_secs(15);

/// Chromium's flags. Without the background-networking ones it keeps dialling out (updates,
/// sync, field trials), which a closed network answers slowly or not at all; `/dev/shm` is
/// small in containers; the window size fixes the screenshots' size.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// A headless Chromium session. Dereferences to the WebDriver client; dropping it kills
/// chromedriver and every Chromium process it started (they share its process group).
pub struct Browser {
    client: Client,
    driver: Child,
    /// The browser's profile, home and temporary files (crash reports, caches, sockets):
    /// nothing lands in the user's, nor stays behind.
    _home: tempfile::TempDir,
}

impl Deref for Browser {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Browser {
    /// Starts chromedriver and opens a session; `None` (after saying why) when there is no
    /// browser on this machine and [`BROWSER_VAR`] does not require one.
    pub async fn start() -> Option<Browser> {
        let chromium = std::env::var_os(CHROMIUM_VAR)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        let Some(driver) = find_program("chromedriver") else {
            return missing("chromedriver is not installed (Debian: chromium-driver)");
        };
        if !chromium.is_file() {
            return missing(&format!(
                "no Chromium at {} (Debian: chromium; or set {CHROMIUM_VAR})",
                chromium.display()
            ));
        }
        let home = tempfile::tempdir().expect("a temporary directory");
        // A port picked free may be taken again before chromedriver binds it: a few tries.
        let mut last_error = String::new();
        for _ in 0..3 {
            match start_driver(&driver, home.path()).await {
                Ok((child, url)) => {
                    let client = open_session(&url, &chromium, home.path()).await;
                    return Some(Browser {
                        client,
                        driver: child,
                        _home: home,
                    });
                }
                Err(error) => last_error = error,
            }
        }
        panic!("chromedriver did not start: {last_error}");
    }

    /// The element `css` selects, once the page shows it.
    pub async fn element(&self, css: &str) -> Element {
        let found = self
            .client
            .wait()
            .at_most(ELEMENT_WITHIN)
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element,
            Err(e) => panic!("no {css} on {}: {e}", self.url_now().await),
        }
    }

    /// The text of the element `css` selects.
    pub async fn text(&self, css: &str) -> String {
        self.element(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("no text for {css}: {e}"))
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Replaces the text of the input `css` selects with `text`, as typed.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.element(css).await;
        input.clear().await.expect("the input clears");
        input
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("cannot type into {css}: {e}"));
    }

    /// The current value of the form field `css` selects.
    pub async fn value(&self, css: &str) -> String {
        self.element(css)
            .await
            .prop("value")
            .await
            .expect("the browser answers")
            .unwrap_or_default()
    }

    /// Clicks at the viewport's pixel `(x, y)` with the left button, as a mouse would.
    pub async fn click_at(&self, x: i64, y: i64) {
        let mouse = MouseActions::new("mouse".to_owned())
            .then(PointerAction::MoveTo {
                duration: None,
                x,
                y,
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        self.client
            .perform_actions(mouse)
            .await
            .unwrap_or_else(|e| panic!("cannot click at ({x}, {y}): {e}"));
    }

    /// Accepts the confirmation dialog the page opens; returns its question.
    pub async fn accept_dialog(&self) -> String {
        let deadline = Instant::now() + ELEMENT_WITHIN;
        loop {
            if let Ok(question) = self.client.get_alert_text().await {
                self.client.accept_alert().await.expect("the dialog closes");
                return question;
            }
            assert!(Instant::now() < deadline, "no dialog opened");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page's address contains `part`; returns it.
    pub async fn wait_for_url(&self, part: &str) -> String {
        let deadline = Instant::now() + ELEMENT_WITHIN;
        loop {
            let url = self.url_now().await;
            if url.contains(part) {
                return url;
            }
            assert!(Instant::now() < deadline, "still on {url}, not on …{part}…");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the current page has an element `css` selects (no waiting).
    pub async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("the browser answers")
            .is_empty()
    }

    /// Waits until the text of `css` satisfies `done`, polling as a person watching would;
    /// returns the text that did. Panics with the last text seen after `within`.
    pub async fn wait_for_text(
        &self,
        css: &str,
        within: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        loop {
            if let Ok(elements) = self.client.find_all(Locator::Css(css)).await {
                if let Some(element) = elements.first() {
                    // The page's script may replace the element between find and read.
                    if let Ok(text) = element.text().await {
                        if done(&text) {
                            return text;
                        }
                        last = text;
                    }
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "{css} still reads {last:?} after {within:?} on {}; the page shows: {}",
                    self.url_now().await,
                    self.page_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The start of what the page shows, for messages.
    pub async fn page_text(&self) -> String {
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(e) => format!("(no body: {e})"),
        };
        text.chars().take(600).collect()
    }

    /// The page's address now, for messages.
    pub async fn url_now(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("(unknown: {e})"))
    }

    /// Saves the page as `NAME.png` in the [`SCREENSHOTS_VAR`] directory, when it is set.
    #[allow(dead_code)] // the console's page tests call it; the harness test calls `save_png`
    pub async fn screenshot(&self, name: &str) {
        if let Some(dir) = std::env::var_os(SCREENSHOTS_VAR) {
            self.save_png(Path::new(&dir), name).await;
        }
    }

    /// Saves the page as `NAME.png` in `dir`; returns the file's path.
    pub async fn save_png(&self, dir: &Path, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::create_dir_all(dir).expect("the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is saved");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Kills chromedriver and every Chromium process it started: they are in its process group
/// (Chromium's crash handlers, in groups of their own, exit when Chromium does).
fn kill_group(driver: &mut Child) {
    let group = format!("-{}", driver.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = driver.wait();
}

/// Skips (`None`) or, when a browser is required, fails.
fn missing(why: &str) -> Option<Browser> {
    if std::env::var(BROWSER_VAR).is_ok_and(|v| v == "required") {
        panic!("{BROWSER_VAR}=required, but {why}");
    }
    println!("skipped without a browser: {why}");
    None
}

/// `name` on `PATH`, else in `/usr/bin`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Starts chromedriver on a free loopback port, in a process group of its own, and waits
/// until it says it is ready; returns it and its URL.
async fn start_driver(driver: &Path, home: &Path) -> Result<(Child, String), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let log = std::fs::File::create(home.join("chromedriver.log")).map_err(|e| e.to_string())?;
    let mut child = Command::new(driver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        // Chromium's singleton socket and, without /dev/shm, its shared memory files: a
        // killed Chromium leaves them behind, so they go where the test removes them.
        .env("TMPDIR", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{}: {e}", driver.display()))?;
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + DRIVER_READY_WITHIN;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(home.join("chromedriver.log")).unwrap_or_default();
            return Err(format!("it exited ({status}): {log}"));
        }
        let ready = match http.get(format!("{url}/status")).send().await {
            Ok(reply) => reply
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|body| body["value"]["ready"] == true),
            Err(_) => false,
        };
        if ready {
            return Ok((child, url));
        }
        if Instant::now() > deadline {
            kill_group(&mut child);
            return Err(format!(
                "not ready on port {port} after {DRIVER_READY_WITHIN:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A WebDriver session with headless Chromium, its profile in `home`.
async fn open_session(driver_url: &str, chromium: &Path, home: &Path) -> Client {
    let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
    args.push(format!(
        "--user-data-dir={}",
        home.join("profile").display()
    ));
    let mut capabilities = fantoccini::wd::Capabilities::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({ "binary": chromium, "args": args }),
    );
    // Plain HTTP to chromedriver on loopback: no TLS stack needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(driver_url)
        .await
        .unwrap_or_else(|e| {
            let log = std::fs::read_to_string(home.join("chromedriver.log")).unwrap_or_default();
            panic!("no Chromium session: {e}\n{log}")
        })
}
