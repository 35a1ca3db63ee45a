"""Operations: the TorchServe process, deploy / rollback / prune, the KServe export."""
