"""Hub metadata values the config can hold: license ids (the Hub's list) and language codes.
Light on purpose: the config validates with these without importing datasets or huggingface_hub."""

from __future__ import annotations

import re

from topictree_hf.errors import ConfigError

# The Hub's license identifiers (hub-docs, docs/hub/repositories-licenses.md). `other` needs a
# license_name and license_link, which the config cannot hold, so it is not offered.
HUB_LICENSES = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc
cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0
cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0
cdla-sharing-1.0 cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1
agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc lppl-1.3c ms-pl mpl-2.0 odc-by odbl openrail++
osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license llama2 llama3 llama3.1
llama3.2 llama3.3 gemma unknown
""".split())

SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]

_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def check_license(license_id: str) -> str:
    """The license as the Hub spells it, or ConfigError naming the fix."""
    lid = license_id.strip().lower()
    if lid not in HUB_LICENSES:
        raise ConfigError(f"output.license {license_id!r} is not a Hub license identifier; set it to one of "
                          "apache-2.0, mit, cc-by-4.0, cc-by-sa-4.0, cc0-1.0, ... "
                          "(see hf.co/docs/hub/repositories-licenses)")
    return lid


def check_languages(languages: list[str]) -> list[str]:
    for lang in languages:
        if not _LANGUAGE.match(lang):
            raise ConfigError(f"output.language {lang!r} is not an ISO 639 code like en, de or pt-BR; fix it")
    return list(languages)
