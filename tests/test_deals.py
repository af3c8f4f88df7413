"""neurofx.deals: the one writer and reader of deals.csv (exact text, round trip, errors)."""

import pytest

from neurofx.deals import DEAL_COLUMNS, Deal, iter_deals_csv, read_deals_csv, write_deals_csv
from neurofx.errors import NeurofxError

HEADER = ",".join(DEAL_COLUMNS) + "\n"
BUY_IN = Deal(1, 1672651200, "EURUSD", "buy", "in", 0.1, 1.071, -0.35, 0.0, 0.0, 1, "agent",
              1672651200, 1.071)
SELL_OUT = Deal(2, 1672662600, "EURUSD", "sell", "out", 0.1, 1.075, -0.35, 0.0, 40.0, 1, "tp",
                1672651200, 1.071)
# values the fixed decimals would change: written in full so nothing is lost
ODD = Deal(3, 1672665000, "EURUSD.m", "sell", "in", 0.005, 1.0712345, -0.125, -0.0, 0.0, 2,
           "agent", 1672665000, 1.0712345)
GOOD_TEXT = (HEADER
             + "1,1672651200,EURUSD,buy,in,0.10,1.07100,-0.35,0.00,0.00,1,agent,1672651200,"
               "1.07100\n"
             + "2,1672662600,EURUSD,sell,out,0.10,1.07500,-0.35,0.00,40.00,1,tp,1672651200,"
               "1.07100\n")


def test_writer_text_is_fixed_decimals_in_ticket_order(tmp_path):
    p = write_deals_csv(tmp_path / "deals.csv", [SELL_OUT, BUY_IN])
    assert p.read_text() == GOOD_TEXT
    write_deals_csv(p, [ODD])
    assert p.read_text() == (HEADER + "3,1672665000,EURUSD.m,sell,in,0.005,1.0712345,-0.125,"
                             "-0.00,0.00,2,agent,1672665000,1.0712345\n")


def test_round_trip_is_exact(tmp_path):
    deals = [BUY_IN, SELL_OUT, ODD]
    assert read_deals_csv(write_deals_csv(tmp_path / "d.csv", deals)) == deals


def test_writer_refuses_non_finite_numbers(tmp_path):
    bad = Deal(**dict(BUY_IN.as_row(), profit=float("nan")))
    with pytest.raises(NeurofxError, match=r"deal 1: field 'profit' is nan, not a finite"):
        write_deals_csv(tmp_path / "d.csv", [bad])
    assert not (tmp_path / "d.csv").exists()


def test_comments_and_blank_lines_are_skipped_and_counted(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("# made by hand\n\n" + GOOD_TEXT.replace("\n2,", "\n# a note\n2,"))
    assert [(n, d) for n, d in iter_deals_csv(p)] == [(4, BUY_IN), (6, SELL_OUT)]
    p.write_bytes(b"\xef\xbb\xbf" + GOOD_TEXT.encode())  # a UTF-8 BOM (spreadsheet export)
    assert read_deals_csv(p) == [BUY_IN, SELL_OUT]


GOOD_ROW = "1,1672651200,EURUSD,buy,in,0.10,1.07100,-0.35,0.00,0.00,1,agent,1672651200,1.07100"


@pytest.mark.parametrize("old, new, line, field", [
    (",1672651200,EURUSD", ",2023-01-02,EURUSD", 3, "time"),
    (",agent,1672651200,", ",agent,1.5,", 3, "entry_time"),
    (",in,0.10,", ",in,0,", 3, "volume"),
    (",1.07100,-0.35", ",-1.071,-0.35", 3, "price"),
    ("-0.35,", "nan,", 3, "commission"),
    (",0.00,1,agent", ",abc,1,agent", 3, "profit"),
    (",buy,", ",long,", 3, "side"),
    (",in,", ",inout,", 3, "entry"),
    (",EURUSD,", ",,", 3, "symbol"),
    (",1.07100\n", "\n", 3, "field count"),
    ("profit,position_id", "position_id,profit", 2, "profit"),
    ("entry_price\n", "entry_price,note\n", 2, "note"),
])
def test_malformed_line_names_file_line_and_field(tmp_path, old, new, line, field):
    p = tmp_path / "d.csv"
    text = "# comment\n" + HEADER + GOOD_ROW + "\n"
    assert old in text
    p.write_text(text.replace(old, new, 1))
    with pytest.raises(NeurofxError) as exc:
        read_deals_csv(p)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{p}, line {line}, field '{field}': ")


def test_unreadable_files(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("# only a comment\n")
    with pytest.raises(NeurofxError, match=r"line 1, field 'header': empty file"):
        read_deals_csv(p)
    p.write_bytes(HEADER.encode() + b"1,\xff\n")
    with pytest.raises(NeurofxError, match=r"d.csv: not UTF-8 text .* at byte \d+"):
        read_deals_csv(p)
    with pytest.raises(NeurofxError, match=r"nope.csv: deal file not found"):
        read_deals_csv(tmp_path / "nope.csv")
