// Package pipeline is the example ML pipeline: validate_data (CPU) →
// process_large_dataset (high-memory) → train_model (GPU) →
// generate_embeddings (GPU) → store_results (CPU), each stage routed by
// resource class and run by a worker pool tuned by headroom.
package pipeline
