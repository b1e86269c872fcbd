"""The unsubscribe page in a real browser: headless Chromium, driven through chromedriver by
Selenium (Debian's chromium, chromium-driver and python3-selenium, from scripts/deps.sh),
loads the link of a really swept message, the member presses the button, the preference
changes. Screenshots of both pages, at a phone's width, go to RW_SCREENSHOT_DIR when set
(docs/unsubscribe-page.png was made that way)."""
import os
import shutil
import tempfile
import unittest

from harness import WorkerTestCase
from worker_http import WorkerHttp, http_env, unsubscribe_token_of

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    SELENIUM = True
except ImportError:
    SELENIUM = False

MISSING = [what for what, ok in (("chromium", CHROMIUM), ("chromedriver (chromium-driver)",
                                                            CHROMEDRIVER),
                                 ("python3-selenium", SELENIUM)) if not ok]


@unittest.skipIf(MISSING, "browser test skipped: %s not installed (scripts/deps.sh installs "
                          "them)" % ", ".join(MISSING))
class UnsubscribePageInChromium(WorkerTestCase):

    def setUp(self):
        super().setUp()
        self.server = None
        self.driver = None
        self.profile = tempfile.mkdtemp(prefix="rw-chromium-")

    def tearDown(self):
        if self.driver is not None:
            self.driver.quit()
        if self.server is not None:
            self.server.stop()
        shutil.rmtree(self.profile, ignore_errors=True)
        super().tearDown()

    def browser(self):
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                  "--disable-background-networking", "--disable-sync",
                  "--force-device-scale-factor=1", "--window-size=390,760",
                  f"--user-data-dir={self.profile}"):
            opts.add_argument(a)
        service = Service(executable_path=CHROMEDRIVER, log_path=os.devnull)  # Selenium 4.8
        driver = webdriver.Chrome(service=service, options=opts)
        driver.set_page_load_timeout(30)
        return driver

    def shot(self, name):
        out = os.environ.get("RW_SCREENSHOT_DIR") or self.tmp
        path = os.path.join(out, name)
        self.assertTrue(self.driver.save_screenshot(path))
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        return path

    def test_the_member_presses_unsubscribe_in_chromium_and_is_opted_out(self):
        ids = self.seed(name="Ada <b>Lovelace</b>")
        r = self.sweep(expect=0, **http_env())
        self.assertEqual(r.summary["nudges_sent"], 1, r)
        token = unsubscribe_token_of(self.mails()[0].message)
        self.server = WorkerHttp(self.env(**http_env()), cwd=self.tmp)
        events = len(self.events(ids["orch_id"]))

        self.driver = self.browser()
        self.driver.get(f"http://127.0.0.1:{self.server.port}"
                        f"{self.server.unsubscribe_path(token)}")
        h1 = self.driver.find_element(By.TAG_NAME, "h1")
        self.assertEqual(h1.text, "Unsubscribe from checkout reminders")
        button = self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]")
        self.assertEqual(button.text, "Unsubscribe")
        self.assertTrue(button.is_displayed())
        # readable on a phone: nothing wider than the viewport, a button big enough to tap
        self.assertLessEqual(self.driver.execute_script(
            "return document.documentElement.scrollWidth"), self.driver.execute_script(
            "return window.innerWidth"))
        self.assertGreaterEqual(button.size["height"], 44)
        self.shot("unsubscribe-page.png")
        # loading the page changed nothing
        self.assertEqual(self.q("SELECT count(*) FROM notification_preferences")[0][0], 0)
        self.assertEqual(len(self.events(ids["orch_id"])), events)

        button.click()
        WebDriverWait(self.driver, 20).until(
            EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "You are unsubscribed"))
        self.shot("unsubscribe-done.png")
        self.assertEqual(self.q("SELECT order_updates FROM notification_preferences"
                                " WHERE user_id = %s", ids["user_id"]), [(False,)])
        ev = self.events(ids["orch_id"])
        self.assertEqual(len(ev), events + 1)
        self.assertEqual(ev[-1]["payload"]["via"], "confirmation_page")
        # the browser posted to the same path, with the token, and nothing else was fetched
        self.assertTrue(self.driver.current_url.startswith(
            f"http://127.0.0.1:{self.server.port}/account/unsubscribe?token="))
        self.assertEqual(self.server.stop(), 0)
        self.assertNotIn("Sanitizer", self.server.stderr())
        self.server = None


if __name__ == "__main__":
    unittest.main()
