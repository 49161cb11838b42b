"""SSE framing holds however the transport cuts the bytes."""
import pytest

from llmgate.providers.sse import encode_event, event_data, event_json, event_name, split_event_batches, split_events

STREAM = (b"event: message_start\ndata: {\"a\":1}\n\n"
          b": comment\n\n"
          b"data: {\"b\":2}\n\n"
          b"data: [DONE]\n\n")


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_split_events_any_chunking(size):
    chunks = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
    assert list(split_events(chunks)) == [b"event: message_start\ndata: {\"a\":1}\n\n", b": comment\n\n",
                                          b"data: {\"b\":2}\n\n", b"data: [DONE]\n\n"]


def test_events_are_grouped_by_the_chunk_that_completed_them():
    chunks = [STREAM[:10], STREAM[10:60], STREAM[60:]]  # the 2nd completes two events, the 3rd two more
    assert [len(batch) for batch in split_event_batches(chunks)] == [2, 2]
    assert [e for batch in split_event_batches(chunks) for e in batch] == list(split_events([STREAM]))
    assert list(split_event_batches([b"data: 1\n", b"\n", b"data: 2"])) == [[b"data: 1\n\n"], [b"data: 2\n\n"]]


def test_crlf_and_unterminated_tail():
    assert list(split_events([b"data: 1\r\n\r\ndata: 2"])) == [b"data: 1\n\n", b"data: 2\n\n"]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_crlf_split_between_chunks(size):
    """A CRLF cut between two chunks (the CR ending one, the LF starting the next) is one line end."""
    crlf = STREAM.replace(b"\n", b"\r\n")
    chunks = [crlf[i:i + size] for i in range(0, len(crlf), size)]
    assert list(split_events(chunks)) == list(split_events([STREAM]))


def test_event_fields():
    event = encode_event({"type": "ping"}, event="ping")
    assert event == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert event_name(event) == "ping" and event_json(event) == {"type": "ping"}
    assert event_name(b"data: x\n\n") is None and event_data(b"data: a\ndata: b\n\n") == b"a\nb"
    assert event_json(b"data: [DONE]\n\n") is None
