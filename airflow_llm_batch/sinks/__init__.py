"""Where results land: XCom (small runs) or object storage (JSONL)."""
