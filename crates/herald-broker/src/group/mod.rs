//! The group coordinator. (Being written.)
