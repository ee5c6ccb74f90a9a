"""The editors' panel of the staff console in headless Debian chromium, against the real server and real accounts:
an editor writes a news item in Markdown, uploads an image into it at the cursor, publishes it, and the public
/news/{slug} page shows it rendered with the image while a typed ``<script>`` stays inert; a draft's preview shows
the server's rendering, script inert; the editor adds a publication with its PDF and /publications lists it; a
moderator (no ``news.write``) gets no panel; the panel passes axe's WCAG 2.2 AA rules on a phone."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from chromium import needs_chromium
from console_helpers import sign_in, staff_accounts, tablet_context
from live_server import Running, serve, test_settings
from PIL import Image
from playwright.async_api import Browser, BrowserContext, expect
from test_a11y_browser import PHONE, axe_violations, describe

from desk.accounts_sqlite import AccountStore

pytestmark = [pytest.mark.browser, needs_chromium]

TITLE = "วุฒิสภาเห็นชอบร่างงบประมาณ"
PUBLICATION = "รายงานการศึกษาระบบงบประมาณแผ่นดิน"
# A script typed into the body: CommonMark with raw HTML off shows it as text; were it ever run, it would set a flag.
SCRIPT = "<script>window.pwned = 1</script>"


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[AccountStore]:
    store = staff_accounts(
        tmp_path / "staff.db",
        ("kanda", ["editor"], "กานดา บรรณาธิการ"),
        ("malee", ["moderator"], None),
    )
    yield store
    store.close()


@pytest.fixture
async def running(tmp_path: Path, accounts: AccountStore) -> AsyncIterator[Running]:
    async with serve(test_settings(tmp_path), accounts=accounts) as r:
        yield r


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    async with tablet_context(browser) as ctx:
        yield ctx


def png() -> bytes:
    """A real 24×16 PNG (the server decodes every upload in full, so it must be one)."""
    out = io.BytesIO()
    Image.new("RGB", (24, 16), (30, 90, 160)).save(out, format="PNG")
    return out.getvalue()


def pdf() -> bytes:
    """A tiny valid one-page PDF, with its cross-reference table at the right offsets."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


async def test_an_editor_writes_illustrates_and_publishes_news_and_adds_a_publication(
    running: Running, context: BrowserContext
):
    """Write a draft in Markdown, upload an image where the caret is, publish: the public page shows the rendered
    article with the image and the typed script as text; unpublish takes it down; a publication with its PDF is
    listed on /publications and its PDF downloads."""
    console = await context.new_page()
    await sign_in(console, running.url, "kanda")
    card = console.locator("#news-card")
    await expect(card).to_be_visible()
    await expect(console.locator("nav a[href='#news-card']")).to_be_visible()

    # An empty title is refused next to its field, which gets focus and names the error.
    await card.get_by_role("button", name="บันทึกร่าง").click()
    title = card.get_by_label("หัวข้อข่าว")
    await expect(title).to_be_focused()
    await expect(title).to_have_attribute("aria-invalid", "true")
    await expect(console.locator("#news-title-error")).to_have_text("กรุณาใส่หัวข้อข่าว")

    await title.fill(TITLE)
    body = card.get_by_label("เนื้อข่าว (Markdown)")
    await body.fill(f"ที่ประชุม**เห็นชอบ**\n\n{SCRIPT}\n\nจบข่าว")
    await card.get_by_label("หมวดหมู่ข่าว (คั่นด้วยจุลภาค)").fill("งบประมาณ, การคลัง")
    await card.get_by_role("button", name="บันทึกร่าง").click()
    await expect(console.locator("#notice")).to_have_text(f"บันทึกร่างข่าวแล้ว: {TITLE}")
    row = console.locator("#news-list li").filter(has_text=TITLE)
    await expect(row.locator(".badge")).to_have_text("ร่าง")
    await expect(row.get_by_role("button", name=TITLE)).to_have_attribute("aria-pressed", "true")
    # The console shows the source as typed: the script is text in a textarea, not an element of the page.
    await expect(body).to_have_value(f"ที่ประชุม**เห็นชอบ**\n\n{SCRIPT}\n\nจบข่าว")
    assert await console.evaluate("window.pwned") is None
    await expect(console.locator("#news-preview")).to_be_hidden()  # a draft has no public page yet

    # The image goes in where the caret is: after the first paragraph.
    caret = len("ที่ประชุม**เห็นชอบ**")
    await body.evaluate("(area, at) => area.setSelectionRange(at, at)", caret)
    await card.get_by_label("แทรกรูปภาพในเนื้อข่าว (PNG, JPEG หรือ WebP ไม่เกิน 5 MB)").set_input_files(
        {"name": "chamber.png", "mimeType": "image/png", "buffer": png()}
    )
    await card.get_by_role("button", name="อัปโหลดและแทรกรูป").click()
    await expect(console.locator("#notice")).to_have_text("อัปโหลดรูปและแทรกในเนื้อข่าวแล้ว")
    source = await body.input_value()
    first, image, rest = source.split("\n\n", 2)
    assert first == "ที่ประชุม**เห็นชอบ**"
    assert image.startswith("![](/media/news/") and image.endswith(".png)")
    assert rest == f"{SCRIPT}\n\nจบข่าว"

    # A file that is not an image is refused next to the upload field.
    await card.get_by_label("แทรกรูปภาพในเนื้อข่าว (PNG, JPEG หรือ WebP ไม่เกิน 5 MB)").set_input_files(
        {"name": "fake.png", "mimeType": "image/png", "buffer": b"<svg onload=alert(1)></svg>"}
    )
    await card.get_by_role("button", name="อัปโหลดและแทรกรูป").click()
    await expect(console.locator("#news-image-error")).to_contain_text("ไม่สำเร็จ")
    await expect(console.locator("#news-image")).to_be_focused()
    assert await body.input_value() == source

    await card.get_by_role("button", name="บันทึกและเผยแพร่").click()
    await expect(console.locator("#notice")).to_have_text(f"เผยแพร่ข่าวแล้ว: {TITLE}")
    await expect(row.locator(".badge")).to_have_text("เผยแพร่แล้ว")
    preview = console.locator("#news-preview")
    await expect(preview).to_be_visible()
    href = await preview.get_attribute("href")
    assert href and href.startswith("/news/")

    public = await context.new_page()
    await public.goto(f"{running.url}{href}")
    await expect(public.locator("#title")).to_have_text(TITLE)
    article = public.locator("#article-body")
    await expect(article.locator("strong")).to_have_text("เห็นชอบ")
    picture = article.locator("img")
    await expect(picture).to_have_count(1)
    assert image == f"![]({await picture.get_attribute('src')})"
    await expect(picture).to_have_js_property("complete", True)
    assert await picture.evaluate("img => img.naturalWidth") == 24  # it loaded, from /media/news
    await expect(article).to_contain_text(SCRIPT)  # shown as text
    await expect(public.locator("#article-body script")).to_have_count(0)
    assert await public.evaluate("window.pwned") is None

    await card.get_by_role("button", name="ถอนการเผยแพร่").click()
    await expect(console.locator("#notice")).to_have_text(f"ถอนการเผยแพร่แล้ว: {TITLE}")
    await expect(row.locator(".badge")).to_have_text("ร่าง")
    gone = await public.reload()
    assert gone is not None and gone.status == 404

    # A publication: a missing year is refused at its field; then the record and its PDF go up together.
    form = console.locator("#publication-form")
    await form.get_by_label("ชื่อเอกสาร").fill(PUBLICATION)
    await form.get_by_label("ผู้แต่ง (บรรทัดละหนึ่งชื่อ)").fill("สำนักวิชาการ\nสำนักงบประมาณของรัฐสภา")
    await form.get_by_label("ประเภท").select_option("report")
    await form.get_by_label("บทคัดย่อ").fill("สรุปการพิจารณางบประมาณ <b>ไม่ใช่ markup</b>")
    await form.get_by_label("ไฟล์ PDF (ไม่เกิน 20 MB)").set_input_files(
        {"name": "report.pdf", "mimeType": "application/pdf", "buffer": pdf()}
    )
    await form.get_by_role("button", name="บันทึกเอกสารและอัปโหลด PDF").click()
    year = form.get_by_label("ปี ค.ศ.")
    await expect(year).to_be_focused()
    await expect(console.locator("#publication-year-error")).to_have_text("กรุณาใส่ปี ค.ศ. ระหว่าง 1900 ถึง 2100")
    await year.fill("2025")
    # A "PDF" that is an image is refused at the file field; the record is kept, and sending a real PDF next
    # uploads it to that record rather than creating a second one.
    pdf_field = form.get_by_label("ไฟล์ PDF (ไม่เกิน 20 MB)")
    await pdf_field.set_input_files({"name": "lie.pdf", "mimeType": "application/pdf", "buffer": png()})
    await form.get_by_role("button", name="บันทึกเอกสารและอัปโหลด PDF").click()
    await expect(console.locator("#publication-pdf-error")).to_contain_text("ไม่สำเร็จ")
    await expect(pdf_field).to_be_focused()
    await expect(pdf_field).to_have_attribute("aria-invalid", "true")
    await pdf_field.set_input_files({"name": "report.pdf", "mimeType": "application/pdf", "buffer": pdf()})
    await form.get_by_role("button", name="บันทึกเอกสารและอัปโหลด PDF").click()
    await expect(console.locator("#notice")).to_have_text(f"เพิ่มเอกสารแล้ว: {PUBLICATION}")
    await expect(console.locator("#publication-list li").filter(has_text=PUBLICATION)).to_contain_text("มี PDF")

    listed = await console.request.get(f"{running.url}/api/publications")
    assert [p["title"] for p in (await listed.json())["publications"]] == [PUBLICATION]

    library = await context.new_page()
    await library.goto(f"{running.url}/publications")
    hit = library.locator("#results li").filter(has_text=PUBLICATION)
    await expect(hit).to_have_count(1)
    await expect(hit).to_contain_text("สำนักวิชาการ, สำนักงบประมาณของรัฐสภา")
    await expect(hit.locator("b")).to_have_count(0)
    download_href = await hit.get_by_role("link", name="ดาวน์โหลด PDF").get_attribute("href")
    response = await library.request.get(f"{running.url}{download_href}")
    assert response.ok and await response.body() == pdf()


async def test_an_editor_previews_a_draft_as_the_public_page_would_show_it(running: Running, context: BrowserContext):
    """The "save and preview" button shows the saved draft's body in the Preview region as the server rendered
    it: a heading from Markdown, bold text, and a typed script as inert text; edits not yet saved leave the preview
    as it was (marked stale) until saved again; nothing of the draft is public meanwhile."""
    console = await context.new_page()
    await sign_in(console, running.url, "kanda")
    card = console.locator("#news-card")
    region = console.get_by_role("region", name="ตัวอย่างเนื้อข่าว (Preview)")
    await expect(region).to_be_hidden()  # nothing saved yet: nothing to preview

    await card.get_by_label("หัวข้อข่าว").fill(TITLE)
    body = card.get_by_label("เนื้อข่าว (Markdown)")
    await body.fill(f"# หัวข้อจาก Markdown\n\nที่ประชุม**เห็นชอบ**\n\n{SCRIPT}")
    await card.get_by_role("button", name="บันทึกและดูตัวอย่าง").click()
    await expect(console.locator("#notice")).to_have_text(f"บันทึกร่างข่าวแล้ว แสดงตัวอย่างด้านล่าง: {TITLE}")
    await expect(region).to_be_visible()
    await expect(region.get_by_role("heading", name="ตัวอย่างเนื้อข่าว (Preview)")).to_be_focused()
    shown = region.locator(".article-body")
    await expect(shown.get_by_role("heading", level=2)).to_have_text("หัวข้อจาก Markdown")
    await expect(shown.locator("strong")).to_have_text("เห็นชอบ")
    await expect(shown).to_contain_text(SCRIPT)  # the typed script, as characters
    await expect(shown.locator("script")).to_have_count(0)
    assert await console.evaluate("window.pwned") is None
    await expect(console.locator("#news-list li").filter(has_text=TITLE).locator(".badge")).to_have_text("ร่าง")

    # Typing does not reach the preview: it stays the saved draft, marked as older than the form.
    stale = console.locator("#news-draft-stale")
    await expect(stale).to_be_hidden()
    await body.fill(f"## หัวข้อใหม่\n\n{SCRIPT}<b>ตัวหนาแบบ HTML</b>")
    await expect(stale).to_be_visible()
    await expect(shown.get_by_role("heading")).to_have_text(["หัวข้อจาก Markdown"])
    await card.get_by_role("button", name="บันทึกและดูตัวอย่าง").click()
    await expect(stale).to_be_hidden()
    await expect(shown.get_by_role("heading", level=3)).to_have_text("หัวข้อใหม่")
    await expect(shown.get_by_role("heading", level=2)).to_have_count(0)
    await expect(shown).to_contain_text("<b>ตัวหนาแบบ HTML</b>")
    await expect(shown.locator("b, script")).to_have_count(0)
    assert await console.evaluate("window.pwned") is None

    # Still a draft: the public gets nothing of it.
    slug = await console.locator("#news-list li").filter(has_text=TITLE).get_attribute("data-slug")
    async with httpx.AsyncClient(base_url=running.url) as client:
        assert (await client.get(f"/api/news/{slug}")).status_code == 404
    # Starting a new article hides the preview of the old one.
    await card.get_by_role("button", name="เริ่มข่าวใหม่").click()
    await expect(region).to_be_hidden()
    await expect(console.locator("#news-draft-body")).to_be_empty()


async def test_a_moderator_gets_no_news_panel(running: Running, context: BrowserContext):
    """A moderator sees neither the panel nor its link, and the API refuses them a news item all the same."""
    console = await context.new_page()
    await sign_in(console, running.url, "malee")
    await expect(console.locator("#news-card")).to_be_hidden()
    await expect(console.locator("nav a[href='#news-card']")).to_be_hidden()
    status = await console.evaluate(
        """async () => {
          const me = await (await fetch('/api/staff/me')).json();
          const r = await fetch('/api/news', {method: 'POST', headers: {'Content-Type': 'application/json',
            'X-CSRF-Token': me.csrf}, body: JSON.stringify({title: 'x', body: 'y'})});
          return r.status;
        }"""
    )
    assert status == 403


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_news_panel_passes_axe_on_a_phone(running: Running, browser: Browser, scheme: str):
    """At 390 px, light and dark, with an article open for editing, an error shown and the publication form, the
    signed-in console passes axe's WCAG 2.2 AA rules and scrolls only vertically."""
    ctx = await browser.new_context(viewport=PHONE, bypass_csp=True, color_scheme=scheme)
    try:
        page = await ctx.new_page()
        await sign_in(page, running.url, "kanda")
        card = page.locator("#news-card")
        await card.get_by_label("หัวข้อข่าว").fill(TITLE)
        await card.get_by_label("เนื้อข่าว (Markdown)").fill("# หัวข้อ\n\nที่ประชุม**เห็นชอบ** [ลิงก์](https://example.org)")
        await card.get_by_role("button", name="บันทึกร่าง").click()
        await expect(page.locator("#news-list li")).to_have_count(1)
        await expect(page.locator("#news-publish")).to_be_visible()
        # The draft's preview is open, with a heading and a link from the Markdown: axe checks it too.
        await expect(page.locator("#news-draft-body h2")).to_have_text("หัวข้อ")
        await expect(page.locator("#news-draft-body a")).to_have_text("ลิงก์")
        await card.get_by_role("button", name="อัปโหลดและแทรกรูป").click()  # no file: an error at its field
        await expect(page.locator("#news-image-error")).to_have_text("กรุณาเลือกไฟล์รูปภาพ")
        await card.scroll_into_view_if_needed()
        assert describe(await axe_violations(page)) == ""
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        await ctx.close()
