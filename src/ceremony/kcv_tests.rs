use super::kcv::{display, kcv_aes_ecb, kcv_cmac};
use super::{Component, KeyMaterial};
use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use cmac::Mac;
use std::io::Write;
use std::process::{Command, Stdio};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key(s: &str) -> [u8; 32] {
    unhex(s).try_into().unwrap()
}

/// NIST SP 800-38B Appendix D.3 / SP 800-38A F.1.5: the AES-256 example key.
const SP800_KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";

#[test]
fn aes_256_ecb_primitive_matches_fips_197_and_sp_800_38a() {
    // FIPS 197 Appendix C.3.
    let cipher = aes::Aes256::new(GenericArray::from_slice(&key(
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    )));
    let mut block = GenericArray::clone_from_slice(&unhex("00112233445566778899aabbccddeeff"));
    cipher.encrypt_block(&mut block);
    assert_eq!(block.as_slice(), unhex("8ea2b7ca516745bfeafc49904b496089"));
    // SP 800-38A F.1.5 ECB-AES256.Encrypt, block 1.
    let cipher = aes::Aes256::new(GenericArray::from_slice(&key(SP800_KEY)));
    let mut block = GenericArray::clone_from_slice(&unhex("6bc1bee22e409f96e93d7e117393172a"));
    cipher.encrypt_block(&mut block);
    assert_eq!(block.as_slice(), unhex("f3eed1bdb5d2a03c064b5a7e3db181f8"));
}

#[test]
fn aes_256_cmac_primitive_matches_sp_800_38b_examples() {
    let tag = |msg: &[u8]| {
        let mut mac =
            <cmac::Cmac<aes::Aes256> as KeyInit>::new(GenericArray::from_slice(&key(SP800_KEY)));
        mac.update(msg);
        mac.finalize().into_bytes().to_vec()
    };
    // SP 800-38B D.3 Example 9 (Mlen = 0) and Example 10 (Mlen = 128).
    assert_eq!(tag(&[]), unhex("028962f61b7bf89efc6b551f4667d983"));
    assert_eq!(
        tag(&unhex("6bc1bee22e409f96e93d7e117393172a")),
        unhex("28a7023f452e8f82bd4bf28d8c37c35c")
    );
}

#[test]
fn kcvs_of_the_sp_800_38_key_are_prefixes_of_independently_computed_blocks() {
    // ECB(key, 0^128) and CMAC(key, 0^128) computed with OpenSSL 3.0 for this key
    // (`openssl enc -aes-256-ecb -nopad`, `openssl mac -cipher AES-256-CBC CMAC`).
    let k = key(SP800_KEY);
    assert_eq!(kcv_aes_ecb(&k).to_vec(), unhex("e568f6"));
    assert_eq!(kcv_cmac(&k).to_vec(), unhex("1a0b2df267"));
    assert_eq!(display(&kcv_cmac(&k)), "1A0B2DF267");
    assert_eq!(display(&kcv_aes_ecb(&k)), "E568F6");
}

#[test]
fn component_and_key_kcvs_use_the_same_definitions() {
    let c = Component::from_hex(SP800_KEY).unwrap();
    assert_eq!(c.kcv_cmac(), kcv_cmac(&key(SP800_KEY)));
    assert_eq!(c.kcv_aes_ecb(), kcv_aes_ecb(&key(SP800_KEY)));
    let k = KeyMaterial::try_from_slice(&key(SP800_KEY)).unwrap();
    assert_eq!(k.kcv_cmac(), c.kcv_cmac());
    assert_eq!(format!("{k:?}"), "KeyMaterial { kcv_cmac: \"1A0B2DF267\" }");
}

/// Runs `openssl` with `args`, 16 zero bytes on stdin; `None` when openssl is not installed.
fn openssl_on_zero_block(args: &[&str]) -> Option<Vec<u8>> {
    let mut child = match Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("openssl: {e}"),
    };
    child.stdin.take().unwrap().write_all(&[0u8; 16]).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

fn openssl_missing() {
    // scripts/setup installs openssl: a missing binary is a failure, never a silent skip.
    panic!("openssl not on PATH: the KCV cross-check cannot run (run scripts/setup)");
}

#[test]
fn kcvs_match_openssl_for_random_keys() {
    for _ in 0..8 {
        let k = KeyMaterial::random().unwrap();
        let key_hex: String = k
            .expose_secret()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let Some(ecb) = openssl_on_zero_block(&["enc", "-aes-256-ecb", "-nopad", "-K", &key_hex])
        else {
            return openssl_missing();
        };
        assert_eq!(ecb.len(), 16);
        assert_eq!(k.kcv_aes_ecb(), ecb[..3]);

        let macopt = format!("hexkey:{key_hex}");
        let Some(cmac_hex) =
            openssl_on_zero_block(&["mac", "-cipher", "AES-256-CBC", "-macopt", &macopt, "CMAC"])
        else {
            return openssl_missing();
        };
        let cmac_hex = String::from_utf8(cmac_hex).unwrap();
        assert_eq!(display(&k.kcv_cmac()), cmac_hex.trim()[..10]);
    }
}
