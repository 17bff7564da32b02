"""The proof: the audit log's hash chain, its Merkle tree, signed notes and checkpoints, time stamps, receipts."""
