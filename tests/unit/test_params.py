from wsfleet.protocol import RequestParams, parse_ws_request_params


def test_observed_original_example() -> None:
    # The original client's customParams {id:'u1', token:'a b&c=d', n:5, arr:[1,2], nul:null}
    # on ws://h/chat?x=1 produce this request target (spec §2.6, observed).
    parsed = parse_ws_request_params("/chat?x=1&id=u1&token=a+b%26c%3Dd&n=5&arr=1%2C2&nul=null")
    assert parsed == RequestParams(
        params={"x": "1", "id": "u1", "token": "a b&c=d", "n": "5", "arr": "1,2", "nul": "null"},
        path="chat",
    )


def test_root_path_and_missing_url() -> None:
    assert parse_ws_request_params("/").path == ""
    assert parse_ws_request_params("/?a=1").params == {"a": "1"}
    assert parse_ws_request_params(None) == RequestParams(params={}, path=None)


def test_repeated_keys_become_lists_even_after_an_empty_value() -> None:
    assert parse_ws_request_params("/?a=1&a=2&a=3").params == {"a": ["1", "2", "3"]}
    assert parse_ws_request_params("/?a=&a=2").params == {"a": ["", "2"]}


def test_options() -> None:
    assert parse_ws_request_params("/X?ID=1&id=2", lower_case_keys=True).params == {
        "id": ["1", "2"]
    }
    assert parse_ws_request_params("/chat", strip_leading_slash=False).path == "/chat"
    assert parse_ws_request_params("/chat", parse_path=False).path is None
    assert parse_ws_request_params("http://h:1/a/b?q=1").path == "a/b"
