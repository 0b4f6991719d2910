"""`spmirror check`'s probe: a handful of read calls that say whether an account's API looks as
the mirror expects, before anything is written anywhere.

`calls` makes the reads (never a write) and keeps each answer as the server framed it;
`detect` turns those answers into findings (pure: the same answers, saved or live, give the
same findings); `findings` is what one finding is; `samples` writes the answers with personal
data masked (`--save-samples`); `report` renders the findings as text or JSON. The same
detection runs on a mirror's first sync (mirror/commands/sync.py), and the findings are kept in
the mirror (mirror/store/api_facts.py), where the sync reads the page size from.
"""
