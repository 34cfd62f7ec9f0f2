"""``make install-plugin``: link this checkout into the user's QGIS profile as plugin ``deeppixel``.

Usage: python3 scripts/install_plugin.py <checkout> [<venv>] [--profile-dir DIR]
The plugin finds the checkout's .venv itself (see __init__.py), so QGIS desktop sees torch.
"""
import argparse
import os
import re


def enable_in_ini(ini_path: str, name: str) -> None:
    """Set ``<name>=true`` under [PythonPlugins] without disturbing the rest of the Qt ini file."""
    text = open(ini_path, encoding="utf-8").read() if os.path.exists(ini_path) else ""
    section = re.search(r"^\[PythonPlugins\]\s*$", text, flags=re.M)
    if section is None:
        text = text.rstrip("\n") + ("\n\n" if text else "") + f"[PythonPlugins]\n{name}=true\n"
    else:
        start = section.end()
        nxt = re.search(r"^\[", text[start:], flags=re.M)
        end = start + nxt.start() if nxt else len(text)
        body = re.sub(rf"^{re.escape(name)}=.*\n?", "", text[start:end], flags=re.M)
        body = "\n" + f"{name}=true\n" + body.lstrip("\n")
        text = text[:start] + body + text[end:]
    os.makedirs(os.path.dirname(ini_path), exist_ok=True)
    with open(ini_path, "w", encoding="utf-8") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkout")
    p.add_argument("venv", nargs="?")
    p.add_argument("--profile-dir", default=os.path.expanduser("~/.local/share/QGIS/QGIS3/profiles/default"))
    args = p.parse_args()
    plugins = os.path.join(args.profile_dir, "python", "plugins")
    os.makedirs(plugins, exist_ok=True)
    link = os.path.join(plugins, "deeppixel")
    if os.path.islink(link):
        os.remove(link)
    elif os.path.exists(link):
        raise SystemExit(f"{link} exists and is not a link; remove it first.")
    os.symlink(os.path.abspath(args.checkout), link)
    enable_in_ini(os.path.join(args.profile_dir, "QGIS", "QGIS3.ini"), "deeppixel")
    print(f"Linked {link} -> {os.path.abspath(args.checkout)} and enabled plugin 'deeppixel'.")
    print("Start QGIS: the Deep Pixel toolbar and the Processing provider 'Deep Pixel' appear.")


if __name__ == "__main__":
    main()
