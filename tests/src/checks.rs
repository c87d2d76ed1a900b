//! What the example guests do, checked over WebRTC with the [`TestPeer`]: shared by the
//! tests of the Rust examples and of their twins in other languages. `what` names the
//! case in the failure messages.

use std::time::Duration;

use serde_json::{Value, json};

use crate::peer::{Outputs, TestPeer, mean_luma, test_pattern};

/// `gain`: the client's sine comes back at `before` (measured at gain 1); after the input
/// `{"gain": 0.25}` it comes back at a quarter of that.
pub async fn quarter_gain(client: &TestPeer, before: f64, what: &str, timeout: Duration) {
    let (status, reply) = client.set_input(json!({"gain": 0.25})).await.unwrap();
    assert_eq!(
        (status, reply),
        (200, json!({"status": "success"})),
        "{what}"
    );
    let after = client.level_after(client.audio_len(), timeout).await;
    let ratio = after / before;
    eprintln!("{what}: rms {before:.0} -> {after:.0} (ratio {ratio:.3})");
    assert!(before > 2000.0, "{what}: level at gain 1: {before:.0}");
    assert!(
        (ratio - 0.25).abs() < 0.05,
        "{what}: level {before:.0} -> {after:.0}: ratio {ratio:.3}, expected 0.25"
    );
}

/// `brightness`: the next output event holds the mean luma of the test pattern the
/// client sends.
pub async fn reported_brightness(outputs: &mut Outputs, what: &str, timeout: Duration) {
    let output = outputs.next(timeout).await.expect("an output event");
    let brightness = output
        .get("brightness")
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{what}: output without brightness: {output}"));
    let expected = mean_luma(&test_pattern(320, 240, 30, 0), 0..240);
    eprintln!("{what}: brightness {brightness:.1} (frames sent: {expected:.1})");
    assert!(
        (brightness - expected).abs() < 10.0,
        "{what}: brightness {brightness:.1}, frames sent have mean luma {expected:.1}"
    );
}

/// `flip`: the client's test pattern (bright on top, dark below) comes back upside down.
pub async fn flipped_video(client: &TestPeer, what: &str, timeout: Duration) {
    assert!(
        client.wait_video(10, timeout).await,
        "{what}: {} frames back ({} packets) for {} sent",
        client.video_frames(),
        client.video_packets(),
        client.video_sent()
    );
    let picture = client.pictures().pop().expect("a picture");
    assert_eq!((picture.width, picture.height), (320, 240));
    let (top, bottom) = (mean_luma(&picture, 0..120), mean_luma(&picture, 120..232));
    eprintln!(
        "{what}: {} frames back, luma top {top:.1}, bottom {bottom:.1}",
        client.video_frames()
    );
    assert!(
        top < 60.0 && bottom > 180.0,
        "{what}: not flipped: top {top:.0}, bottom {bottom:.0}"
    );
}
