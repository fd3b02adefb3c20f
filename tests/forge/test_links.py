"""bot.forge.links: the console page of a deployment, where comments and statuses link."""

from __future__ import annotations

from bot.forge.links import deployment_url


def test_a_deployment_links_its_console_page_when_there_is_a_public_url():
    target = {"publicUrl": "https://meshbot.example.com/", "statusUrl": "https://meshbot.example.com/status/x?env=qa"}
    assert deployment_url(target, "1796515562555-4ecfbf77") == \
        "https://meshbot.example.com/deployments/1796515562555-4ecfbf77"
    assert deployment_url(target, "a/b?c") == "https://meshbot.example.com/deployments/a%2Fb%3Fc"


def test_without_a_public_url_the_request_s_own_link_or_none():
    assert deployment_url({"statusUrl": "https://x/status/p?env=qa"}, "d1") == "https://x/status/p?env=qa"
    assert deployment_url({"publicUrl": None, "statusUrl": None}, "d1") is None
