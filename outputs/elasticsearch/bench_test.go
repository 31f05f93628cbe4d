package elasticsearch

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	es "github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"

	"github.com/auditforwarder/forwarder/plugins"
)

// benchEvents returns n events like the generate source's (~500 bytes of
// JSON each) with ids unique to this run.
func benchEvents(n int, tag string) []*plugins.Event {
	evs := testEvents(n)
	for i, ev := range evs {
		ev.Meta.ID = fmt.Sprintf("%s-%d", tag, i)
		ev.Fields.Set("event.id", ev.Meta.ID)
	}
	return evs
}

// BenchmarkAppendDocs measures building a bulk body (CPU only).
func BenchmarkAppendDocs(b *testing.B) {
	cfg := defaultConfig()
	o, err := newOutput(plugins.NopSettings("es"), cfg)
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(1000, "enc")
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = buf[:0]
		for _, ev := range evs {
			buf = o.appendDoc(buf, ev)
		}
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "docs/s")
}

// BenchmarkBulkLoad loads the same documents into the local node through
// this output (batches of 1000, two Writes in flight, as the engine's
// defaults do) and through a plain esutil.BulkIndexer with its defaults
// (NumCPU workers, 5 MB flushes) fed pre-encoded JSON, alternating rounds
// of 5000 documents so both see the same machine load. One op is one
// document per loader; it reports docs/s for each and their ratio. Run it
// with a fixed count:
//
//	go test -run '^$' -bench BulkLoad -benchtime 50000x ./outputs/elasticsearch/
func BenchmarkBulkLoad(b *testing.B) {
	u := requireES(b)
	ctx := context.Background()
	dsOut, dsPlain := uniqueName("logs-cloudaudit-bo"), uniqueName("logs-cloudaudit-bp")
	outputs := map[string]*output{}
	for _, ds := range []string{dsOut, dsPlain} {
		// Both data streams get the same template and mappings.
		cfg := defaultConfig()
		cfg.Addresses, cfg.Index = []string{u}, ds
		o, err := newOutput(plugins.NopSettings("es"), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := o.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer o.Close(ctx)
		outputs[ds] = o
	}
	out := outputs[dsOut]
	client, err := es.NewClient(es.Config{Addresses: []string{u}})
	if err != nil {
		b.Fatal(err)
	}
	evOut, evPlain := benchEvents(b.N, dsOut), benchEvents(b.N, dsPlain)
	docs := make([][]byte, len(evPlain))
	for i, ev := range evPlain {
		docs[i] = ev.AppendJSON(nil)
	}

	loadOutput := func(evs []*plugins.Event) {
		const batch = 1000
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					start := int(next.Add(batch)) - batch
					if start >= len(evs) {
						return
					}
					end := min(start+batch, len(evs))
					for err := out.Write(ctx, evs[start:end]); err != nil; err = out.Write(ctx, evs[start:end]) {
						b.Logf("retrying a Write: %v", err)
						time.Sleep(100 * time.Millisecond)
					}
				}
			}()
		}
		wg.Wait()
	}
	var failed atomic.Int64
	loadPlain := func(from, to int) {
		bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: client, Index: dsPlain})
		if err != nil {
			b.Fatal(err)
		}
		for i := from; i < to; i++ {
			err := bi.Add(ctx, esutil.BulkIndexerItem{
				Action:     "create",
				DocumentID: evPlain[i].Meta.ID,
				Body:       bytes.NewReader(docs[i]),
				OnFailure: func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem, error) {
					failed.Add(1)
				},
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := bi.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}

	const round = 5000
	var tOut, tPlain time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for from := 0; from < b.N; from += round {
		to := min(from+round, b.N)
		t0 := time.Now()
		loadOutput(evOut[from:to])
		t1 := time.Now()
		loadPlain(from, to)
		tOut += t1.Sub(t0)
		tPlain += time.Since(t1)
	}
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("BulkIndexer: %d failures", failed.Load())
	}
	outRate, plainRate := float64(b.N)/tOut.Seconds(), float64(b.N)/tPlain.Seconds()
	b.ReportMetric(outRate, "output_docs/s")
	b.ReportMetric(plainRate, "bulkindexer_docs/s")
	b.ReportMetric(100*outRate/plainRate, "%_of_plain")
	b.Logf("workers: BulkIndexer %d (NumCPU), output 2 Writes in flight", runtime.NumCPU())
	for _, ds := range []string{dsOut, dsPlain} {
		if got := esCount(b, ds); got != b.N {
			b.Fatalf("%s: _count %d, want %d", ds, got, b.N)
		}
	}
}
