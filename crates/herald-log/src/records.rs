//! Records inside a v2 batch: encoding, decoding, compression. (Being written.)
