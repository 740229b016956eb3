"""Prompt corpora for the token-estimate tests: a realistic mix, and one built to defeat a sample."""

from __future__ import annotations

import random

_WORDS = ("refund order shipping delayed account password reset invoice charged twice cancel subscription "
          "the a to of and please help thanks customer support ticket urgent broken login error app").split()
_ACCENTED = "Bonjour, je voudrais être remboursé : la commande n'est jamais arrivée. Merci beaucoup ! Größe ü ß"
_CJK = "注文した商品がまだ届いていません。返金をお願いします。我的订单还没有到\uff0c请帮我查一下。"
_CODE = 'def total(items):\n    return sum(i["price"] * i.get("qty", 1) for i in items)  # TODO: tax\n'
_EMOJI = "Great service 👍🎉 but the app 🐛 crashes 😡 on login 🔑"


def realistic(n: int, seed: int = 11) -> list[str]:
    """Mixed lengths, English, accents, CJK, code, numbers and emoji, in a shuffled order."""
    rnd = random.Random(seed)
    texts: list[str] = []
    for i in range(n):
        kind = rnd.random()
        words = " ".join(rnd.choices(_WORDS, k=rnd.randint(3, 120)))
        if kind < 0.55:
            texts.append(words)
        elif kind < 0.65:
            texts.append(_ACCENTED[: rnd.randint(20, len(_ACCENTED))] + " " + words[:200])
        elif kind < 0.72:
            texts.append(_CJK[: rnd.randint(10, len(_CJK))])
        elif kind < 0.82:
            texts.append(_CODE * rnd.randint(1, 4))
        elif kind < 0.92:
            texts.append(" ".join(str(rnd.randint(0, 10 ** rnd.randint(1, 12))) for _ in range(rnd.randint(3, 40))))
        else:
            texts.append(_EMOJI + " " + words[:100] + f" #{i}")
    return texts


def adversarial(n: int) -> list[str]:
    """Short English rows first (few tokens per byte), then long rows of CJK, emoji and digits (more)."""
    rnd = random.Random(5)
    short = [" ".join(rnd.choices(_WORDS, k=12)) for _ in range(n // 2)]
    long = [(_CJK + _EMOJI + str(rnd.getrandbits(200))) * (1 + i % 7) for i in range(n - n // 2)]
    return short + long
