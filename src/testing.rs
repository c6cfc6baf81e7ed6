//! Helpers shared by the unit tests of several layers (test builds only).

/// How the property tests run: bounded, so the normal suite stays quick,
/// and without writing regression files into the tree.
pub fn proptest_config() -> proptest::prelude::ProptestConfig {
    proptest::prelude::ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    }
}
