"""weights/ -> versioned .mar archives in model_store/, and the lifecycle around them."""
