"""What a study is given: the arguments checked before any work, the fixed samples, the device."""
