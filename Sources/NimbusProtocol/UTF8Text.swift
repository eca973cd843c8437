/// Strings from received bytes.
enum UTF8Text {
    /// `bytes` as a String if they are valid UTF-8, else nil. All-ASCII text (ids, names, ARNs and
    /// most bodies) skips `String(validating:as:)`: that initializer is generic, and its run-time
    /// metadata look-ups showed in the table node's profile.
    static func validated(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var high: UInt8 = 0
        for byte in bytes { high |= byte }
        if high < 0x80 { return String(decoding: bytes, as: UTF8.self) }
        return String(validating: bytes, as: UTF8.self)
    }
}
