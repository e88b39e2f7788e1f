"""Campaign recipients read from a CSV or a JSON list: header names, and the contact rules an
import keeps (the contacts API's), each broken row named by where it is."""

from __future__ import annotations

from server.services.recipient_import import from_csv, from_json


def test_csv_headers_become_field_names_a_merge_field_can_use() -> None:
    result = from_csv(
        "\ufeffMobile Number,First Name,E-mail,Zip/Postal Code,Année,Student ID#\n"
        "617 555 0101,Ana,ana@example.edu,02139,2027,S-17\n"
    )
    assert result.errors == []
    [ana] = result.recipients
    assert (ana.phone, ana.first_name, ana.email) == ("+16175550101", "Ana", "ana@example.edu")
    assert ana.fields == {"zip_postal_code": "02139", "annee": "2027", "student_id": "S-17"}


def test_csv_header_problems_refuse_the_file_before_any_row() -> None:
    nameless = from_csv("phone,###,program\n6175550101,x,Art\n")
    assert nameless.errors == [
        {"line": 1, "error": "a column of the header row has no name of letters or digits"}
    ]
    repeated = from_csv("phone,Program,program!\n6175550101,Art,Art\n")
    assert repeated.errors == [{"line": 1, "error": "repeated column: program"}]
    wide = ",".join(["phone"] + [f"c{i}" for i in range(51)])
    assert from_csv(wide + "\n").errors == [
        {"line": 1, "error": "at most 50 columns besides phone and names"}
    ]


def test_csv_rows_keep_the_contact_rules() -> None:
    result = from_csv(
        "phone,first_name,email,essay\n"
        "6175550101,Ana,ana@example.edu,short\n"
        "6175550102,Bo,not an address,short\n"
        f"6175550103,Cy,,{'x' * 2001}\n"
    )
    assert result.errors == [
        {"line": 3, "error": "email must be an email address"},
        {"line": 4, "error": "fields.essay: field values are at most 2000 characters"},
    ]


def test_json_recipients_keep_the_contact_rules() -> None:
    result = from_json(
        [
            {"phone": "6175550101", "fields": {"program": "Art", "year": 2027, "vip": None}},
            {"phone": "6175550102", "fields": {"bad key": "x"}},
            {"phone": "6175550103", "fields": {"nested": {"a": 1}}},
            {"phone": "6175550104", "email": "nope"},
            {"phone": "6175550105", "fields": {f"f{i}": i for i in range(51)}},
        ]
    )
    assert result.errors == [
        {
            "index": 1,
            "error": "fields.bad key: field names are 1 to 64 letters, digits or underscores",
        },
        {"index": 2, "error": "fields.nested: field values are strings, numbers, booleans or null"},
        {"index": 3, "error": "email must be an email address"},
        {"index": 4, "error": "fields: at most 50 fields"},
    ]
    assert [r.fields for r in result.recipients] == [{"program": "Art", "year": 2027, "vip": None}]
