use super::*;

fn sys(dict: BTreeMap<String, u16>, heartbeat: Duration) -> HandshakeResponseSys {
    HandshakeResponseSys {
        dict,
        heartbeat,
        serializer: "json".into(),
    }
}

#[test]
fn parses_libpitaya_request() {
    let body = br#"{"sys":{"platform":"android","libVersion":"0.3.5-release",
        "clientBuildNumber":"20","clientVersion":"2.1"},"user":{"age":30}}"#;
    let req = HandshakeRequest::parse(body).unwrap();
    assert_eq!(req.sys.platform, "android");
    assert_eq!(req.sys.lib_version, "0.3.5-release");
    assert_eq!(req.sys.client_build_number, "20");
    assert_eq!(req.sys.client_version, "2.1");
    assert_eq!(req.user.unwrap()["age"], 30);
}

#[test]
fn missing_keys_become_empty_and_unknown_keys_are_ignored() {
    let req =
        HandshakeRequest::parse(br#"{"sys":{"platform":"ios","extra":1},"other":[]}"#).unwrap();
    assert_eq!(req.sys.platform, "ios");
    assert_eq!(req.sys.lib_version, "");
    assert_eq!(req.sys.client_build_number, "");
    assert_eq!(req.user, None);
    assert_eq!(
        HandshakeRequest::parse(b"{}").unwrap(),
        HandshakeRequest::default()
    );
}

#[test]
fn null_values_count_as_missing() {
    let req = HandshakeRequest::parse(br#"{"sys":{"platform":null},"user":null}"#).unwrap();
    assert_eq!(req, HandshakeRequest::default());
    assert_eq!(
        HandshakeRequest::parse(br#"{"sys":null}"#).unwrap(),
        HandshakeRequest::default()
    );
}

#[test]
fn wrong_value_type_is_invalid() {
    let err = HandshakeRequest::parse(br#"{"sys":{"clientBuildNumber":20}}"#);
    assert!(matches!(err, Err(DecodeError::InvalidHandshake(_))));
    let err = HandshakeRequest::parse(br#"{"user":"x"}"#);
    assert!(matches!(err, Err(DecodeError::InvalidHandshake(_))));
    assert!(matches!(
        HandshakeRequest::parse(b"not json"),
        Err(DecodeError::InvalidHandshake(_))
    ));
}

#[test]
fn request_json_uses_camel_case_and_round_trips() {
    let req = HandshakeRequest {
        sys: HandshakeSys {
            platform: "desktop".into(),
            lib_version: "1.0".into(),
            client_build_number: "1".into(),
            client_version: "0.1".into(),
        },
        user: None,
    };
    let json = String::from_utf8(req.to_json()).unwrap();
    assert_eq!(
        json,
        r#"{"sys":{"platform":"desktop","libVersion":"1.0","clientBuildNumber":"1","clientVersion":"0.1"}}"#
    );
    assert_eq!(HandshakeRequest::parse(json.as_bytes()).unwrap(), req);
}

#[test]
fn response_json_prints_whole_heartbeat_as_integer() {
    let resp = HandshakeResponse::accepted(sys(BTreeMap::new(), Duration::from_secs(30)));
    assert_eq!(
        String::from_utf8(resp.to_json()).unwrap(),
        r#"{"code":200,"sys":{"dict":{},"heartbeat":30,"serializer":"json"}}"#
    );
}

#[test]
fn response_json_prints_fractional_heartbeat_as_float() {
    let dict = BTreeMap::from([("b.c".to_owned(), 2), ("a.b".to_owned(), 1)]);
    let resp = HandshakeResponse::rejected(sys(dict, Duration::from_millis(1500)));
    assert_eq!(
        String::from_utf8(resp.to_json()).unwrap(),
        r#"{"code":400,"sys":{"dict":{"a.b":1,"b.c":2},"heartbeat":1.5,"serializer":"json"}}"#
    );
}

#[test]
fn small_response_stays_plain_when_compression_is_on() {
    let resp = HandshakeResponse::accepted(sys(BTreeMap::new(), Duration::from_secs(30)));
    let body = resp.encode(true);
    assert_eq!(body, resp.to_json());
    assert_eq!(HandshakeResponse::decode(&body).unwrap(), resp);
}

#[test]
fn large_dictionary_response_is_compressed_and_decodes() {
    let dict = (0..50)
        .map(|i| (format!("connector.room.handler{i}"), i))
        .collect();
    let resp = HandshakeResponse::accepted(sys(dict, Duration::from_secs(30)));
    let body = resp.encode(true);
    assert!(compression::is_compressed(&body));
    assert!(body.len() < resp.to_json().len());
    assert_eq!(HandshakeResponse::decode(&body).unwrap(), resp);
    assert_eq!(resp.encode(false), resp.to_json());
}

#[test]
fn decode_clamps_negative_heartbeat_to_zero() {
    let resp = HandshakeResponse::decode(br#"{"code":200,"sys":{"heartbeat":-3}}"#).unwrap();
    assert_eq!(resp.sys.heartbeat, Duration::ZERO);
    assert!(resp.sys.dict.is_empty());
}

#[test]
fn decode_rejects_missing_sys_and_bad_json() {
    let err = HandshakeResponse::decode(br#"{"code":200}"#);
    assert!(matches!(err, Err(DecodeError::InvalidHandshakeResponse(_))));
    let err = HandshakeResponse::decode(br#"{"code":"200","sys":{}}"#);
    assert!(matches!(err, Err(DecodeError::InvalidHandshakeResponse(_))));
    let err = HandshakeResponse::decode(&[0x78, 0x9C, 0x00]);
    assert!(matches!(err, Err(DecodeError::Inflate(_))));
}

#[test]
fn request_that_is_not_an_object_is_invalid() {
    for body in [
        &b"[]"[..],
        b"1",
        b"\"x\"",
        br#"{"sys":[]}"#,
        br#"{"sys":"a"}"#,
    ] {
        let err = HandshakeRequest::parse(body).unwrap_err();
        assert!(matches!(err, DecodeError::InvalidHandshake(_)), "{body:?}");
    }
}
