#!/usr/bin/env python3
"""Writes the charset fixtures: one message per charset, the Subject an
RFC 2047 encoded word in that charset, the body text in it. Run from this
directory; the .eml files are committed, this script documents them."""
import base64
import quopri

# file, charset label, Python codec, subject, body, transfer encoding,
# encoded-word encoding (B or Q)
FIXTURES = [
    ("koi8-r", "koi8-r", "koi8_r", "Привет из Москвы",
     "Съешь же ещё этих мягких французских булок, да выпей чаю.", "8bit", "B"),
    ("windows-1251", "windows-1251", "cp1251", "Отчёт за квартал",
     "Бухгалтерия прислала годовой баланс.", "quoted-printable", "Q"),
    ("koi8-u", "koi8-u", "koi8_u", "Їжак і ґанок",
     "Єнот пішов до лісу по ґудзики.", "8bit", "B"),
    ("iso-8859-5", "iso-8859-5", "iso8859_5", "Љубав и Њива",
     "Ђорђе чита новине.", "8bit", "Q"),
    ("iso-8859-7", "iso-8859-7", "iso8859_7", "Καλημέρα κόσμε",
     "Η συνάντηση μεταφέρθηκε την Τρίτη.", "quoted-printable", "B"),
    ("iso-8859-2", "iso-8859-2", "iso8859_2", "Zażółć gęślą jaźń",
     "Pchnąć w tę łódź jeża lub ośm skrzyń fig.", "8bit", "Q"),
    ("windows-1250", "windows-1250", "cp1250", "Příliš žluťoučký kůň",
     "úpěl ďábelské ódy", "quoted-printable", "Q"),
    ("iso-8859-8", "iso-8859-8", "iso8859_8", "שלום עולם",
     "הפגישה נדחתה למחר", "8bit", "B"),
    ("windows-1256", "windows-1256", "cp1256", "مرحبا بالعالم",
     "تم تأجيل الاجتماع", "base64", "B"),
    ("iso-8859-9", "iso-8859-9", "iso8859_9", "Işık ve gölge",
     "Şoförün çantası ağır.", "8bit", "Q"),
    ("windows-874", "tis-620", "cp874", "สวัสดีชาวโลก",
     "การประชุมถูกเลื่อน", "8bit", "B"),
    ("iso-2022-jp", "iso-2022-jp", "iso2022_jp", "会議の議事録",
     "来週の打ち合わせは水曜日です。", "7bit", "B"),
    ("shift_jis", "shift_jis", "shift_jis", "日本語のテスト",
     "請求書を添付いたします。", "base64", "B"),
    ("euc-jp", "euc-jp", "euc_jp", "東京タワー見学",
     "富士山の写真を送ります。", "8bit", "B"),
    ("euc-kr", "euc-kr", "euc_kr", "안녕하세요 세계",
     "회의가 연기되었습니다.", "8bit", "B"),
    ("ks_c_5601-1987", "ks_c_5601-1987", "cp949", "서울 날씨",
     "내일은 비가 옵니다.", "base64", "B"),
    # GB2312 label, GBK-only character (镕): mailers write it so.
    ("gb2312", "gb2312", "gbk", "你好世界 朱镕基",
     "会议推迟到下周。", "8bit", "B"),
    ("gbk", "gbk", "gbk", "简体中文邮件",
     "附件是季度报告。", "base64", "B"),
    # A character outside the BMP (four bytes in GB18030).
    ("gb18030", "gb18030", "gb18030", "𠮷野家 牛丼",
     "欢迎光临𠮷野家。", "8bit", "B"),
    ("big5", "big5", "big5", "繁體中文測試",
     "颱風明天登陸臺灣。", "8bit", "B"),
    ("utf-16", "utf-16", "utf-16", "Грамматика",
     "Ελληνικά και русский в UTF-16.", "base64", "B"),
    ("utf-7", "utf-7", "utf-7", "Stück für Stück",
     "Grüße aus Zürich, 日本語 auch.", "7bit", "Q"),
]


def word(charset, codec, text, enc):
    b = text.encode(codec)
    if enc == "B":
        return "=?%s?B?%s?=" % (charset, base64.b64encode(b).decode())
    q = "".join(
        chr(c) if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122) else
        "_" if c == 32 else "=%02X" % c for c in b)
    return "=?%s?Q?%s?=" % (charset, q)


def body(codec, text, cte):
    b = (text + "\r\n").encode(codec)
    if cte == "base64":
        s = base64.b64encode(b)
        return b"\r\n".join(s[i:i + 76] for i in range(0, len(s), 76)) + b"\r\n"
    if cte == "quoted-printable":
        return quopri.encodestring(b).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return b


for name, charset, codec, subj, text, cte, enc in FIXTURES:
    head = (
        "From: Sender <sender@example.org>\r\n"
        "To: rcpt@example.net\r\n"
        "Subject: %s\r\n"
        "Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
        "Message-ID: <%s@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=\"%s\"\r\n"
        "Content-Transfer-Encoding: %s\r\n"
        "\r\n" % (word(charset, codec, subj, enc), name, charset, cte))
    with open(name + ".eml", "wb") as f:
        f.write(head.encode("ascii") + body(codec, text, cte))
