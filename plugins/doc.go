// Package plugins is the component API of the forwarder: the one package a
// component author imports, whether the component is built in or runs as an
// external plugin.
//
// # Data model
//
// Sources emit a Batch: events plus an opaque Checkpoint. An Event carries
// its document as an *Object (an insertion-ordered JSON object with dotted
// path access and an allocation-light JSON codec) and Meta (source id,
// dataset, stable id, time).
//
// # Lifecycle
//
// For every component the engine calls, in order:
//
//  1. Factory.CreateDefaultConfig, then decodes the user's keys over it
//     with DecodeConfig (strict: unknown keys and type mismatches fail) and
//     walks it with ValidateConfig;
//  2. Factory.Create;
//  3. Start, outputs first, then transforms, then sources;
//  4. Source.Run / Transform.Process / Output.Write, any number of times;
//  5. Close, sources first, outputs last, after in-flight batches drained.
//
// Close is called even when Start failed or was never called, and may be
// called twice; implementations must tolerate both.
//
// # Delivery
//
// The engine, not the component, owns checkpoints: a source never commits
// progress. A batch's checkpoint is persisted once every output that
// received any of its events accepted them, and every earlier batch of the
// same source is persisted too. Outputs report failures with plain errors
// (retried), Permanent errors (dead-lettered) or a *BatchError (per event).
//
// # Memory
//
// Events live as long as their batch: once every consumer is done with it
// the engine calls Batch.Release, and the source may reuse the memory of
// the events (the file source does, which spares the garbage collector most
// of a replay's allocations). So an in-process transform or output never
// keeps an event, its document or one of its strings after Process or
// Write returns; what it caches is a copy (Event.Detached, strings.Clone).
// The rule is the same inside an external plugin (package sdk), which
// reuses a call's memory for the next request.
//
// # Configuration
//
// Config structs use `koanf:"snake_case"` tags, hold Secret for credentials
// (printed as [REDACTED] everywhere) and may implement Validator; errors
// built with FieldErrorf get the full key path, such as
// "sources.ncp.page_size: must be between 1 and 100, got 500".
package plugins
