//! Fuzz target: re-hashing an arbitrary export, then naming differences against itself.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(re) = audit::verify::rehash_export(data, |_| {}) {
        let leaves = re.leaves();
        assert_eq!(audit::verify::diagnose(&leaves, &leaves), None);
    }
});
