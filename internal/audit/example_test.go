package audit_test

import (
	"encoding/json"
	"os"

	"github.com/sumd-project/sumd/internal/audit"
)

// The JSON form of a Report is what `sumd verify -json` prints: here, an
// incremental full audit that found a duplicate.
func ExampleReport() {
	first, dup := int64(17), int64(10321)
	rep := audit.Report{
		Database:       "sum.example.com",
		URL:            "https://sum.example.com",
		Tree:           &audit.Tree{Size: 10500, Hash: "IHyedPtHfN/OaRLOxedckMSRy3C5rvGOErOiNGVjo6I="},
		Previous:       &audit.Tree{Size: 10000, Hash: "QL8fmcQZ4lcoKz6xL7eMo/TqAOnFbuwZr986ZuPkdkM="},
		Checks:         []string{audit.CheckSignature, audit.CheckTiles, audit.CheckConsistency, audit.CheckRecords},
		RecordsFrom:    10000,
		RecordsAudited: 500,
		Problems: []audit.Problem{{
			Kind:    audit.KindDuplicate,
			Message: "example.com/m@v1.0.0 is recorded twice, as records 17 and 10321: a checksum database holds one record per module version",
			Record:  &dup, Module: "example.com/m@v1.0.0", Records: []int64{first, dup},
		}},
		Seconds:          0.25,
		RecordsPerSecond: 2000,
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(rep)
	// Output:
	// {
	//   "ok": false,
	//   "database": "sum.example.com",
	//   "url": "https://sum.example.com",
	//   "tree": {
	//     "size": 10500,
	//     "hash": "IHyedPtHfN/OaRLOxedckMSRy3C5rvGOErOiNGVjo6I="
	//   },
	//   "previous": {
	//     "size": 10000,
	//     "hash": "QL8fmcQZ4lcoKz6xL7eMo/TqAOnFbuwZr986ZuPkdkM="
	//   },
	//   "checks": [
	//     "signature",
	//     "tiles",
	//     "consistency",
	//     "records"
	//   ],
	//   "records_from": 10000,
	//   "records_audited": 500,
	//   "gosum_lines": 0,
	//   "problems": [
	//     {
	//       "kind": "duplicate",
	//       "message": "example.com/m@v1.0.0 is recorded twice, as records 17 and 10321: a checksum database holds one record per module version",
	//       "record": 10321,
	//       "module": "example.com/m@v1.0.0",
	//       "records": [
	//         17,
	//         10321
	//       ]
	//     }
	//   ],
	//   "seconds": 0.25,
	//   "records_per_second": 2000
	// }
}
