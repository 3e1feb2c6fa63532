/*
 * RSA 2048 test keys of the fuzz targets, made with `openssl genrsa 2048` for this
 * directory only. They sign nothing outside the fuzz seeds: fuzz_jws.c builds its
 * JWKS from them, and make_seeds.py signs the seed tokens with them.
 */
#ifndef FUZZ_KEYS_H
#define FUZZ_KEYS_H

/* The JWKS key with kid "fuzz-key-1". The sign mode of fuzz_jws signs with it. */
static const char fuzz_key1_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC7mbASRLwP7Ccr\n"
    "1MTGKfDtmdTUheKRameg9b0zRAlEx4d+Rl426eyB5qwTwbDETLlza0YfuH1UfaMx\n"
    "tCq7P6oah9Rrj+WexukxtNW51I2p5O8EaeCZiN7PjSC5HiGmsGGFjehZvz66UOjC\n"
    "AmX7vNXrP6NlgXlp+YNI/8gSVEIaB2XQ/ZGSAvo2ha0txKKXiFH515G574xFtlPU\n"
    "aO94wMj5d0fnujwgV4xz6CLel5i+sFWtSMIgzi7KFrXEiBVrS+FLQGXWkSrrtZvi\n"
    "QihEBvP0MpUBBrfgoNT7I6e7PEB0ZpgHUEk3q+uUeAySFGb9EWeJ7C8VaiREiEgW\n"
    "94Wz8mXrAgMBAAECggEALBmOyFycEOoksysLLsJBPrmAzIzEnAZ1YeMinOCLhT2a\n"
    "XlbQYvxOeqLtJJ/Nm/elSLqY+2/1Fl2KdW6y9N2ccSwpBTgIdHCx9Ntbupl6y8tj\n"
    "XJg/EhiYuBWm8Z1hr7ua0ThwvFg2uLm4XZMOwkS7zNdi48Ox9PWQpSJrt9NSzqcz\n"
    "HiO2Rh/Dy27W2NIiDzhCaugqrgco5Tp8g9aKKVhA4vAz2lLSEzXLm1yiGQFG1lXe\n"
    "cx3hld2zPAEb6kSE9DMnr9DE43e+f9SToNf45xx7UXVfDzA4RRk8iJjoqAsT1t4z\n"
    "TeyIxikFBOrpAjNJzkQPkBIKYc1o0SVSQvbJ0MbXIQKBgQDvBhO2x32gF6GKaacg\n"
    "4xgFbvpR7W4SIRyOHtozaq7GX4c20+EyL0QShSGGTN+sl5lDgPvXZsdZ2z7Gjo81\n"
    "oIhzEY9gOS+r/p6izwkGAMpfcNBCLMXG+0Jm0Dx0iRAf51QT0u9JZAAefa/3dEcl\n"
    "EA6AV3izBflwnAj9JA4EgMIvgwKBgQDI7KHMATkdcvZPXxn4IK0F7zh7ndCf7GEc\n"
    "6Mlb6VcQ8ELWxtV55+fcJxHlKGkxt629cZZimu6FArYrkuL8bXlrt3lPdNM48Vvo\n"
    "qs8ny3Bibk1pL6ibMoNCb0Y6U0+W7kfSEcCAbhytQIY/XxFrgju8W0TRG7T8qeQI\n"
    "xo+PoXJ7eQKBgQDgmHg7vnXn0WykT6SQPXNb36ztAMn11REs5gaoW61Aj5DRTwSD\n"
    "EHDJajlXJbLjTUvhZzi9bUESyPXSwzAD9wVgAncTtoh59/X+C8Zx0ppWVf4KwGFT\n"
    "GNOLIk48PnJdWBPj0Mex0XpfLEEFp0gWpmDJ7ednaMy7KJM1sgRN7OMKmwKBgQCr\n"
    "/HHakEl1fcx80GkITeANLmHo3oOQAOR3vINv22KdqytrcTOWb/22IvNcdqTk29cq\n"
    "TCpwKTJ2RIXu8oK9lG/U1m5Opy+OlHsZw+wioi+G8eftW9A1WJ2mpl00289K4Jg1\n"
    "puBijt6ZJpxDbnsYzZeYeX+EhvT7Oelp4Z1NUuMN8QKBgEi3DLt5GSsKqjLG33YQ\n"
    "sMXLHKXBz7gElRZhU7GFjYAirrcbuQkTs2HOaRtTfQy4P7mmhBn8BzOeWotCpxcN\n"
    "zncH4BjVpzoPOWW/5PY6vskG88e35XqQxGGM2062BPH1vuQK2MWXSG7q6g9SsyAw\n"
    "ixKUUQbQqQl51z/5zpH8+ifI\n"
    "-----END PRIVATE KEY-----\n";

/* The JWKS key with kid "fuzz-key-2". */
static const char fuzz_key2_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCzzMV5dx3mDvWz\n"
    "Yqoqp7mo+py1V/l3rTODVDLtqIXrpr03uL3mhqAnkLZKFjhpl69QE76YwERI89yU\n"
    "SNL1wdTzLInZmfMuCYbHAAuysOUvam9lEdsrBMB3xt7ZxnMpBrqRnQO91cxGwcE5\n"
    "zE3BbBqQPD8ZXzco0Q933tR1KdPqwwzVvXSnm9UGdtbbIHysCbwb6dc75QSaCYyv\n"
    "4bF58muBT6p3Xv/7QKrd/dS3eurAZLsrftY+FvvS1r1mgJD8/yAibJF8Fx+pfwcN\n"
    "xjpQ+sDnkos5CCoLo4lD82ckQ1M1O2WEx2B729ugsFcwLlsw9aVdup1yJESFz6W0\n"
    "RCFOGS+FAgMBAAECggEAGPDn18CZSid7F8Yw+rfHflQ9Vr58YYiKI8aTRfphkV3Q\n"
    "06Dx3r+ACdz+HGrWqncbH42Nm9zX3BLP31X2xZZ8trrP6Hp9jD5QDtzHwqLdN+WY\n"
    "zDlc4KvJExRoJ2dq5B8F1FsmgLfenVYVOrJHevRG/wkMa7WUjjnp3mPvrsz9k4v9\n"
    "fU6rxHQdSAc1TI5KnCm/iuGwhU835uYHIaFQl7qNfWdiZcVstTUcPcYGgH17CUwJ\n"
    "o0G0Rhv+shofuDQJhyyiKMtBgOJ0vlbY8tcTNtTGz651XeE0o10tG+wzBQgVmBCY\n"
    "yyD7DN+lzFGVIjmEm9ARQxeIxEJtQ9D0KkO//deK4QKBgQDZ9RlCHg4jJ7MiOPeN\n"
    "uUlujmMl7Yzt96x8L91HIn5iRoK7sj5vxP8m9MZn2lc+PBNVJbhAxcuBZRKWm3Vj\n"
    "JOgraGoi9+kFCYNPfUe1VyIkALgbeb9JP+qxbTRxIvilAWFiyTzL8oamhN921MQs\n"
    "E6/Z+Fp5PJn/HGleJtEWyuWXuQKBgQDTLrIT+wMoDXCDOENCEByXM2/JlGmuqk56\n"
    "FJqAG5wZ5saEk0odE8PwPqVEv/dkWYqQiRMp0g95saLfLHuvSdJ9g7Sz13MT31N0\n"
    "Ylb7TkTs3MrrTXJtYZfiB6aThiV2wHnSMWVng18Zy2/3UAxN4jPiAPa3JwEXI3HT\n"
    "VMte8mOkLQKBgDlZQFghSF7/pyauDpT/1857MKNeKeLDdGMIxRRegxqgqu1wLPWD\n"
    "xA8gAMR6stHxRLT2w9BnOvDFA2sVZIG9yEkDpEmnKWzl3+Med6vDTXxjpA22rxo6\n"
    "8ynULiRGq13fSxyPDqwrGDrgY1wFB8kBNRgJPOUBiROTCjZ3yDRTFq4hAoGALdZ3\n"
    "3rBgKgRoxIKkzqUSn5sRi46ENd5PdF4efun/Qvv9YO9bad5NbEscskR8nTJ2ShMG\n"
    "rtAifcaZ1JkiK5T5dDbvNQ3xs4GI6r0hpiCCA2uVO+eui6FgRzZj6Kd4YEM87eu8\n"
    "1/AC52Vp4yNj2E/d9RNCedSkfvI5laZVEkHIcO0CgYEAxhTFFm+nvf/+5GRs9l91\n"
    "CfRj0gHUAQN3TsogE5fdOwEp5SHT6jQp/vpr1gQ9a8eSti6FILwZkCJH+YIIYNmv\n"
    "Ajpjw0WuUM9mU/zaX1aHyH33PYOJe9muCOgH4WfSgRPFNNixEjvV78u1hSq6iVKW\n"
    "76T0WllmwvS6DgaxgLz8vI8=\n"
    "-----END PRIVATE KEY-----\n";

#endif /* FUZZ_KEYS_H */
